"""A real authoritative DNS server for tests (dnslib), on 127.0.0.1 and a free UDP/TCP port.

Tests put records in `zone`; names not in the zone get NXDOMAIN; `broken` names get a malformed
reply, `timeouts` names get no reply at all, `servfail` names get SERVFAIL. `queries` lists every
(name, type) asked, in order.
"""

import socket
import threading

from dnslib import AAAA, MX, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSServer


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
    return port


class _ZoneResolver(BaseResolver):
    def __init__(self, server):
        self.server = server

    def resolve(self, request, handler):
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        self.server.queries.append((name, qtype))
        reply = request.reply()
        if name in self.server.timeouts:
            return None
        if name in self.server.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        records = self.server.zone.get(name)
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for rtype, value in records:
            if rtype != qtype:
                continue
            if rtype == "MX":
                preference, exchange = value
                reply.add_answer(RR(name, QTYPE.MX, rdata=MX(exchange, preference), ttl=60))
            elif rtype == "A":
                reply.add_answer(RR(name, QTYPE.A, rdata=A(value), ttl=60))
            elif rtype == "AAAA":
                reply.add_answer(RR(name, QTYPE.AAAA, rdata=AAAA(value), ttl=60))
            elif rtype == "TXT":
                chunks = value if isinstance(value, (list, tuple)) else [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(list(chunks)), ttl=60))
        return reply


class DnsServer:
    def __init__(self):
        self.zone = {}
        self.broken = set()
        self.timeouts = set()
        self.servfail = set()
        self.queries = []
        self.port = None
        self._servers = []

    def add(self, name, rtype, value):
        self.zone.setdefault(name.rstrip(".").lower(), []).append((rtype, value))

    def clear(self, name):
        self.zone.pop(name.rstrip(".").lower(), None)

    def publish_checklist(self, domain):
        """Publish exactly what the domain's checklist asks for."""
        from domains.dns import expected_records

        for exp in expected_records(domain):
            if exp.type == "MX":
                preference, host = exp.expected.split()
                self.add(exp.host, "MX", (int(preference), host))
            else:
                self.add(exp.host, "TXT", exp.expected)

    def start(self):
        from dnslib.server import DNSHandler

        owner = self

        class Handler(DNSHandler):
            def get_reply(self, data):
                request = DNSRecord.parse(data)
                name = str(request.q.qname).rstrip(".").lower()
                if name in owner.broken:
                    return b"\x00\x01garbage-not-a-dns-message"
                reply = self.server.resolver.resolve(request, self)
                if reply is None:  # simulate a dead server: say nothing
                    raise _Silence()
                return reply.pack()

            def handle(self):
                try:
                    super().handle()
                except _Silence:
                    pass

        resolver = _ZoneResolver(self)
        for attempt in range(5):
            port = _free_port()
            try:
                udp = DNSServer(resolver, address="127.0.0.1", port=port, handler=Handler, logger=_QuietLogger())
                tcp = DNSServer(resolver, address="127.0.0.1", port=port, tcp=True, handler=Handler, logger=_QuietLogger())
            except OSError:
                continue
            self.port = port
            self._servers = [udp, tcp]
            for server in self._servers:
                threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            return
        raise RuntimeError("could not bind a loopback DNS server")

    def stop(self):
        for server in self._servers:
            server.server.shutdown()
            server.server.server_close()


class _Silence(Exception):
    pass


class _QuietLogger:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None
