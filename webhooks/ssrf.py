"""Where a webhook may be sent: public addresses only, resolved once and pinned (docs/operations/security-and-reliability.md, Webhooks: SSRF).

`webhook_target(url)` parses a URL, resolves its host with the product's resolver (domains.dns), and
refuses it unless every address is public: loopback, private, CGNAT, link-local (cloud metadata
included), multicast, reserved, unspecified, and the IPv6 forms that wrap an IPv4 address (mapped,
NAT64, 6to4, Teredo) are refused, whatever the wrapped address. It returns the addresses to connect to,
so the caller connects to what was checked (a second lookup could answer differently: DNS rebinding).
It runs at registration and, for delivery, before every attempt.

http is accepted only for hosts listed in QMAILING_WEBHOOK_HTTP_ALLOWED_HOSTS (empty by default), which
also skips the address check for them: that is how tests reach a receiver on loopback.
"""

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

import dns.exception
import dns.resolver
from django.conf import settings

from domains.dns import build_resolver
from core.errors import Invalid

MAX_URL_LENGTH = 2000

_BLOCKED_NETWORKS = [ipaddress.ip_network(net) for net in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/32",
    "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)]


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # as in the URL, IDNA-encoded: the Host header and the TLS server name
    port: int
    addresses: tuple  # the checked addresses to connect to, in the resolver's order


def address_blocked(address) -> bool:
    """Whether `address` (text or ipaddress object) is anything but a public unicast address."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return True
    if any(ip in network for network in _BLOCKED_NETWORKS if network.version == ip.version):
        return True
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified


def _resolve(host):
    resolver = build_resolver()
    found = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = resolver.resolve(host, rdtype, raise_on_no_answer=False, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except (dns.exception.DNSException, OSError, ValueError):
            raise Invalid(f"{host} could not be resolved right now; check the name and try again.", field="url",
                          code="webhook_url_unresolvable")
        found += [rdata.address for rdata in answer or ()]
    return found


def webhook_target(url) -> Target:
    """The checked Target of a webhook URL, or Invalid (code webhook_url_refused) saying why."""
    url = str(url or "").strip()
    if not url or len(url) > MAX_URL_LENGTH or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise Invalid(f"Give an https URL of at most {MAX_URL_LENGTH} characters, without spaces.", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = (parts.hostname or "").rstrip(".")
        host = host.encode("idna").decode("ascii") if host and not _is_ip(host) else host
    except (ValueError, UnicodeError):
        raise Invalid("This is not a valid URL.", field="url")
    allowed_http = host.lower() in {h.lower() for h in settings.QMAILING_WEBHOOK_HTTP_ALLOWED_HOSTS}
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not allowed_http):
        raise Invalid("Webhook URLs must use https.", field="url", code="webhook_url_refused")
    if not host or parts.username or parts.password:
        raise Invalid("Give a URL with a host name and no user name or password in it.", field="url",
                      code="webhook_url_refused")
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = [host] if _is_ip(host) else _resolve(host)
    if not addresses:
        raise Invalid(f"{host} has no address (A or AAAA record).", field="url", code="webhook_url_unresolvable")
    blocked = [a for a in addresses if address_blocked(a)]
    if blocked and not allowed_http:
        raise Invalid(f"{host} resolves to {blocked[0]}, which is not a public internet address. Webhooks "
                      "are only sent to public addresses.", field="url", code="webhook_url_refused")
    return Target(url=url, scheme=parts.scheme, host=host, port=port, addresses=tuple(addresses))


def _is_ip(host):
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False
