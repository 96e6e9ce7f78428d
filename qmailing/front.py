"""The front of `run_all --web-workers N`: one listening port before N web processes (daphne) on this node.

    python -m qmailing.front --host 127.0.0.1 --port 8000 --backends 127.0.0.1:41001,127.0.0.1:41002

Why a front at all (docs/development/decisions/0012-web-processes-behind-a-session-aware-front.md): an MCP
session lives in the memory of the process that opened it, so every request of a session must reach that
process. Each process prefixes the ids of the sessions it opens with its index (`w1-…`, agent.mcp.sessions);
the front reads the `Mcp-Session-Id` header and sends the request to that process. Everything else (pages,
REST, session-less MCP, new sessions) is spread round-robin over the processes that accept a connection.

- When a session's process is down, the front answers `404 Session not found` itself, as the MCP spec has a
  server do for an unknown session: the client opens a new one, on a live process.
- Responses are streamed event by event (SSE is never buffered); a client that goes away mid-stream closes
  the stream's connection to its process, so the process sees the disconnect.
- A websocket upgrade (the dashboard's live pages) is passed to the process, then bytes flow both ways.
- Headers other than hop-by-hop ones pass unchanged (Host, X-Forwarded-For): the processes see what they would
  see with no front, except that the peer is the front (loopback), as it is behind the TLS proxy in production.
- A request is sent to a second process only when the first refused the connection (nothing was sent), or
  when it is idempotent: a POST that may have run is answered 502, and its client decides.

HTTP/1.1 framing is h11's (python-hyper's sans-I/O state machine that uvicorn and httpcore are built on): the
front decides only where a request goes. It imports nothing from Django, so it starts at once.
"""

import argparse
import asyncio
import itertools
import json
import logging
import re
import signal
import time

import h11

logger = logging.getLogger("qmailing.front")

SESSION_PREFIX = re.compile(rb"w(\d+)-")  # agent.mcp.sessions.worker_session_prefix
READ_SIZE = 64 * 1024
IDLE_CLIENT_SECONDS = 75  # a client connection is closed after this long without a new request
DOWN_SECONDS = 2  # a process that refused a connection is tried after the others for this long
IDLE_BACKEND_SECONDS = 30  # a pooled connection to a process is not reused after this long idle
RETRYABLE_BODY_BYTES = 1024 * 1024  # a body up to this size is held, so a stale pooled connection can be retried
IDEMPOTENT = {b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"}
# Not forwarded: each side's framing and connection handling are h11's; `Expect: 100-continue` the front answers.
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade", b"expect"}


def worker_of_session(session_id):
    """The index of the process that opened a session, from its id (bytes); None when the id has no tag."""
    match = SESSION_PREFIX.match(session_id or b"")
    return int(match.group(1)) if match else None


class BackendDown(Exception):
    """A process refused the connection: nothing was sent to it."""


class Backend:
    """One web process: its address and its idle keep-alive connections."""

    def __init__(self, index, host, port):
        self.index, self.host, self.port = index, host, port
        self.idle = []  # (reader, writer, h11 connection, idle since)
        self.refused_at = None  # when it last refused a connection: tried last for a while, and logged once

    def seems_down(self, now):
        return self.refused_at is not None and now - self.refused_at < DOWN_SECONDS

    async def connection(self):
        """A pooled connection that still looks open, or a new one: (reader, writer, h11 connection, pooled)."""
        now = time.monotonic()
        while self.idle:
            reader, writer, conn, since = self.idle.pop()
            if now - since < IDLE_BACKEND_SECONDS and not reader.at_eof() and not writer.is_closing():
                return reader, writer, conn, True
            writer.close()
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as error:
            if self.refused_at is None:
                logger.warning("web process %d (%s:%d) is down: %s", self.index, self.host, self.port, error)
            self.refused_at = now
            raise BackendDown(str(error)) from error
        if self.refused_at is not None:
            logger.info("web process %d (%s:%d) is back", self.index, self.host, self.port)
            self.refused_at = None
        return reader, writer, h11.Connection(h11.CLIENT), False

    def release(self, reader, writer, conn):
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self.idle.append((reader, writer, conn, time.monotonic()))
        else:
            writer.close()


async def next_event(conn, reader):
    """The next h11 event of `conn`, reading from `reader` as it needs bytes."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(READ_SIZE))


def forwarded_headers(headers, *, upgrade):
    """The request's or response's headers without hop-by-hop ones (h11 frames each side itself)."""
    kept = [(name, value) for name, value in headers if name not in HOP_BY_HOP]
    if upgrade:
        kept += [(b"connection", b"Upgrade"), (b"upgrade", upgrade)]
    return kept


def header(headers, name):
    for key, value in headers:
        if key == name:
            return value
    return None


class Front:
    def __init__(self, backends):
        self.backends = backends
        self.turn = itertools.count()

    # --- One client connection: requests one after the other (keep-alive).

    async def serve(self, reader, writer):
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                # A timer, not wait_for (a task per request): closing an idle connection ends the read with EOF.
                idle = asyncio.get_running_loop().call_later(IDLE_CLIENT_SECONDS, writer.close)
                try:
                    event = await next_event(conn, reader)
                finally:
                    idle.cancel()
                if not isinstance(event, h11.Request):
                    return  # ConnectionClosed, or PAUSED after a protocol switch we did not make
                if not await self.forward(event, conn, reader, writer):
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as error:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await self.answer(conn, writer, error.error_status_hint, b"Bad request\n", b"text/plain")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def candidates(self, request):
        """(processes to try in order, session id or None): the session's own process, or all, round-robin."""
        session_id = header(request.headers, b"mcp-session-id")
        worker = worker_of_session(session_id)
        if worker is not None and worker < len(self.backends):
            return [self.backends[worker]], session_id
        start = next(self.turn) % len(self.backends)
        ordered = self.backends[start:] + self.backends[:start]
        now = time.monotonic()
        return sorted(ordered, key=lambda backend: backend.seems_down(now)), session_id  # stable: live ones first

    async def forward(self, request, client, client_reader, client_writer):
        """Send one request to a process and its answer back. False when the client connection must close."""
        body, streamed = await self.read_body(client, client_reader, client_writer)
        upgrade = header(request.headers, b"upgrade") if b"upgrade" in (
            header(request.headers, b"connection") or b"").lower() else None
        try:
            outgoing = h11.Request(method=request.method, target=request.target,
                                   headers=forwarded_headers(request.headers, upgrade=upgrade))
        except h11.LocalProtocolError:  # what HTTP/1.0 allows and 1.1 does not, e.g. no Host header
            await self.answer(client, client_writer, 400, b"Bad request: no Host header\n", b"text/plain")
            return False
        backends, session_id = self.candidates(request)
        # A refused connection means nothing was sent: the next process may have the request, whatever it is.
        # Once sent, only an idempotent request with its body still at hand is sent again (a stale keep-alive
        # connection, or a process that died): a POST may have run, so its client gets a 502 and decides.
        replayable = request.method in IDEMPOTENT and not streamed
        for backend in backends:
            for attempt in (1, 2):
                try:
                    reader, writer, conn, pooled = await backend.connection()
                except BackendDown:
                    break  # the next process (or, for a session, 404 below)
                try:
                    sent = [conn.send(outgoing)] + [conn.send(h11.Data(data=chunk)) for chunk in body]
                    if streamed:
                        writer.write(b"".join(sent))
                        sent = []
                        await self.stream_body(client, client_reader, conn, writer)
                    writer.write(b"".join(sent) + conn.send(h11.EndOfMessage()))  # one write: one syscall
                    await writer.drain()
                    response = await next_event(conn, reader)
                    if isinstance(response, h11.ConnectionClosed):
                        raise ConnectionResetError("closed before answering")
                except (ConnectionError, h11.RemoteProtocolError, h11.LocalProtocolError) as error:
                    writer.close()
                    logger.warning("web process %d failed before answering %s %s: %s", backend.index,
                                   request.method.decode(), request.target[:100].decode("latin-1"), error)
                    if replayable and attempt == 1 and pooled:
                        continue  # once more on a fresh connection to the same process
                    if replayable:
                        break  # the next process
                    await self.answer(client, client_writer, 502, b"The web process failed\n", b"text/plain")
                    return False
                return await self.relay(response, client, client_reader, client_writer, backend, reader, writer, conn)
        if session_id is not None and worker_of_session(session_id) is not None:
            await self.answer(client, client_writer, 404, json.dumps({
                "jsonrpc": "2.0", "id": None,
                "error": {"code": -32600, "message": "Session not found"}}).encode(), b"application/json")
        else:
            await self.answer(client, client_writer, 502, b"No web process answered\n", b"text/plain")
        return client.our_state is h11.DONE and client.their_state is h11.DONE

    async def read_body(self, client, client_reader, client_writer):
        """The request body's chunks when it is small (held, so the request can be retried), else (its first
        chunks, True): the rest is streamed to the process."""
        if client.they_are_waiting_for_100_continue:
            client_writer.write(client.send(h11.InformationalResponse(status_code=100, headers=[])))
        chunks, size = [], 0
        while True:
            event = await next_event(client, client_reader)
            if isinstance(event, h11.EndOfMessage):
                return chunks, False
            if isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("the client went away mid-request")
            chunks.append(event.data)
            size += len(event.data)
            if size > RETRYABLE_BODY_BYTES:
                return chunks, True

    async def stream_body(self, client, client_reader, conn, writer):
        while True:
            event = await next_event(client, client_reader)
            if isinstance(event, h11.EndOfMessage):
                return
            if isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("the client went away mid-request")
            writer.write(conn.send(h11.Data(data=event.data)))
            await writer.drain()

    async def relay(self, response, client, client_reader, client_writer, backend, reader, writer, conn):
        """The process's answer to the client, event by event; a 101 turns both connections into a pipe."""
        if isinstance(response, h11.InformationalResponse) and response.status_code == 101:
            client_writer.write(client.send(h11.InformationalResponse(
                status_code=101, headers=forwarded_headers(response.headers, upgrade=header(response.headers, b"upgrade")),
                reason=response.reason)))
            await client_writer.drain()
            await pipe(client.trailing_data[0], client_reader, client_writer, conn.trailing_data[0], reader, writer)
            return False
        while isinstance(response, h11.InformationalResponse):  # 1xx other than 101: passed on, then the answer
            client_writer.write(client.send(h11.InformationalResponse(
                status_code=response.status_code, headers=forwarded_headers(response.headers, upgrade=None))))
            response = await next_event(conn, reader)
        # What is already here goes out in one write (one syscall); it is flushed before every wait, so a stream's
        # events never wait for more.
        out = [client.send(h11.Response(
            status_code=response.status_code, headers=forwarded_headers(response.headers, upgrade=None),
            reason=response.reason))]
        # While the answer streams, a client that hangs up must end it: its side of the connection is watched
        # from the first time the answer is not already all here (most JSON answers come in one read).
        gone = receive = None
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    if out:
                        client_writer.write(b"".join(out))
                        out.clear()
                        await client_writer.drain()
                    if gone is None:
                        gone = asyncio.ensure_future(client_reader.read(READ_SIZE))
                    if receive is None:
                        receive = asyncio.ensure_future(reader.read(READ_SIZE))
                    done, _ = await asyncio.wait({receive, gone}, return_when=asyncio.FIRST_COMPLETED)
                    if gone in done:
                        early = gone.result()
                        if not early:
                            writer.close()  # the client left: so does the stream to the process
                            return False
                        client.receive_data(early)  # a next request sent early: h11 keeps it until this cycle ends
                        gone = asyncio.ensure_future(client_reader.read(READ_SIZE))
                    if receive in done:
                        conn.receive_data(receive.result())
                        receive = None
                elif isinstance(event, h11.Data):
                    out.append(client.send(event))
                elif isinstance(event, h11.EndOfMessage):
                    out.append(client.send(h11.EndOfMessage()))
                    client_writer.write(b"".join(out))
                    await client_writer.drain()
                    backend.release(reader, writer, conn)
                    return True
                else:  # ConnectionClosed mid-answer: the process died; the client cannot be given a clean end
                    writer.close()
                    return False
        except (ConnectionError, h11.RemoteProtocolError):
            writer.close()
            return False
        finally:
            if receive is not None:
                receive.cancel()
            if gone is None:
                pass
            elif not gone.done():
                gone.cancel()
            elif not gone.cancelled() and gone.exception() is None and gone.result():
                client.receive_data(gone.result())

    async def answer(self, conn, writer, status, body, content_type):
        """An answer of the front's own (no process reached)."""
        try:
            writer.write(conn.send(h11.Response(status_code=status, headers=[
                (b"content-type", content_type), (b"content-length", str(len(body)).encode())])))
            writer.write(conn.send(h11.Data(data=body)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        except (h11.LocalProtocolError, ConnectionError):
            writer.close()


async def pipe(client_early, client_reader, client_writer, backend_early, backend_reader, backend_writer):
    """Bytes both ways until either side closes (a websocket after its upgrade)."""
    async def copy(early, source, sink):
        try:
            if early:
                sink.write(early)
            while data := await source.read(READ_SIZE):
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()

    await asyncio.gather(copy(client_early, client_reader, backend_writer),
                         copy(backend_early, backend_reader, client_writer))


def parse_backends(text):
    backends = []
    for index, address in enumerate(item.strip() for item in text.split(",") if item.strip()):
        host, _, port = address.rpartition(":")
        backends.append(Backend(index, host.strip("[]") or "127.0.0.1", int(port)))
    return backends


async def main(host, port, backends):
    front = Front(backends)
    server = await asyncio.start_server(front.serve, host, port, reuse_address=True, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    logger.info("front on %s:%d before %d web processes: %s", host, port, len(backends),
                ", ".join(f"w{b.index}={b.host}:{b.port}" for b in backends))
    async with server:
        await stop.wait()
    logger.info("front stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backends", required=True, help="the web processes, in index order: host:port,host:port,…")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(main(options.host, options.port, parse_backends(options.backends)))
