"""The DNS checklist of a domain: what we expect (docs/user-guide/domains.md) and what the world answers.

Every lookup outcome, including timeouts, NXDOMAIN and garbage, becomes a state; nothing here raises.
"""

from dataclasses import dataclass

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
from django.conf import settings

from domains.models import DnsRecord

OWNERSHIP_PREFIX = "qmailing-verification="
OWNERSHIP_HOST_LABEL = "_qmailing"
Kind, State = DnsRecord.Kind, DnsRecord.State


@dataclass(frozen=True)
class Expectation:
    kind: str
    host: str
    type: str
    expected: str
    required: bool
    position: int


@dataclass(frozen=True)
class Outcome:
    state: str
    found: str
    fix: str


def expected_records(domain):
    """The checklist for a domain, in the order a person should add the records."""
    name = domain.name
    dmarc = "v=DMARC1; p=quarantine; adkim=r; aspf=r"
    if settings.QMAILING_DMARC_RUA:
        dmarc += f"; rua=mailto:{settings.QMAILING_DMARC_RUA}"
    return [
        Expectation(Kind.OWNERSHIP, f"{OWNERSHIP_HOST_LABEL}.{name}", "TXT", f"{OWNERSHIP_PREFIX}{domain.ownership_token}", True, 0),
        Expectation(Kind.MX, name, "MX", f"10 {settings.QMAILING_MX_HOST}", True, 1),
        Expectation(Kind.SPF, name, "TXT", f"v=spf1 mx include:{settings.QMAILING_SPF_INCLUDE} ~all", False, 2),
        Expectation(Kind.DKIM, f"{domain.dkim_selector}._domainkey.{name}", "TXT", f"v=DKIM1; k=rsa; p={domain.dkim_public_key}", True, 3),
        Expectation(Kind.DMARC, f"_dmarc.{name}", "TXT", dmarc, False, 4),
    ]


def build_resolver():
    resolver = dns.resolver.Resolver(configure=not settings.QMAILING_DNS_RESOLVERS)
    if settings.QMAILING_DNS_RESOLVERS:
        servers = []
        for entry in settings.QMAILING_DNS_RESOLVERS:
            host, port = entry, 53
            if entry.count(":") == 1:  # ip:port (IPv6 addresses are given bare or as [ip]:port)
                host, port_text = entry.split(":")
                port = int(port_text)
            elif entry.startswith("[") and "]:" in entry:
                host, port_text = entry[1:].split("]:")
                port = int(port_text)
            servers.append(dns.nameserver.Do53Nameserver(host.strip("[]"), port))
        resolver.nameservers = servers
    resolver.lifetime = settings.QMAILING_DNS_TIMEOUT
    resolver.timeout = settings.QMAILING_DNS_TIMEOUT
    resolver.cache = None
    return resolver


class LookupFailed(Exception):
    pass


def _query(resolver, host, rdtype):
    """Return the answer's rdata list; [] when the name or type does not exist; LookupFailed otherwise."""
    try:
        return list(resolver.resolve(host, rdtype, raise_on_no_answer=False, search=False) or [])
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.Timeout:
        raise LookupFailed("the DNS lookup timed out")
    except dns.resolver.NoNameservers as exc:
        raise LookupFailed(f"no resolver gave an answer ({_short(exc)})")
    except dns.exception.DNSException as exc:
        raise LookupFailed(f"the DNS answer could not be read ({_short(exc)})")
    except (OSError, ValueError) as exc:
        raise LookupFailed(f"the resolver could not be reached ({_short(exc)})")


def _short(exc):
    text = str(exc) or exc.__class__.__name__
    return text if len(text) < 200 else text[:197] + "..."


def _printable(text):
    """Escape control characters (NUL included) so any record can be stored and shown."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _txt_values(rdatas):
    values = []
    for rdata in rdatas:
        if rdata.rdtype != dns.rdatatype.TXT:
            continue
        values.append(_printable(b"".join(rdata.strings).decode("utf-8", errors="replace")))
    return values


def _tags(record):
    tags = {}
    for part in record.split(";"):
        if "=" in part:
            key, _, value = part.partition("=")
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def _check_mx(exp, rdatas):
    wanted = settings.QMAILING_MX_HOST.rstrip(".").lower()
    mx = [(r.preference, r.exchange.to_text(omit_final_dot=True).lower()) for r in rdatas if r.rdtype == dns.rdatatype.MX]
    found = ", ".join(f"{pref} {host or '.'}" for pref, host in sorted(mx))
    if not mx:
        return Outcome(State.MISSING, "", f"Add an MX record on {exp.host} pointing to {wanted} with priority 10.")
    if any(host in ("", ".") for _, host in mx):
        return Outcome(State.MISMATCH, found, f"The domain publishes a null MX (it refuses all mail). Replace it with an MX record pointing to {wanted}.")
    if any(host == wanted for _, host in mx):
        others = [host for _, host in mx if host != wanted]
        if others:
            return Outcome(State.MISMATCH, found, f"Remove the other MX records ({', '.join(others)}) so that all mail reaches {wanted}.")
        return Outcome(State.OK, found, "")
    return Outcome(State.MISMATCH, found, f"The MX records point elsewhere. Replace them with one MX record pointing to {wanted}.")


def _check_spf(exp, rdatas):
    include = f"include:{settings.QMAILING_SPF_INCLUDE}".lower()
    spf = [v for v in _txt_values(rdatas) if v.lower().startswith("v=spf1")]
    found = " | ".join(spf)
    if not spf:
        return Outcome(State.MISSING, "", f"Add a TXT record on {exp.host} with the value: {exp.expected}")
    if len(spf) > 1:
        return Outcome(State.MISMATCH, found, "There is more than one SPF record, which makes SPF fail. Merge them into one record that contains " + include + ".")
    if include not in spf[0].lower().split():
        return Outcome(State.MISMATCH, found, f"Add {include} to your SPF record, before its final all mechanism.")
    return Outcome(State.OK, found, "")


def _check_dkim(exp, rdatas, public_key):
    values = _txt_values(rdatas)
    found = " | ".join(values)
    if not values:
        return Outcome(State.MISSING, "", f"Add a TXT record on {exp.host} with the value shown (a long value may be split into several quoted strings).")
    for value in values:
        tags = _tags(value)
        if tags.get("p") == public_key and tags.get("v", "DKIM1").upper() == "DKIM1":
            return Outcome(State.OK, found, "")
    return Outcome(State.MISMATCH, found, f"The DKIM record on {exp.host} does not carry this domain's public key. Replace its value with the one shown, exactly.")


def _check_dmarc(exp, rdatas):
    dmarc = [v for v in _txt_values(rdatas) if v.upper().replace(" ", "").startswith("V=DMARC1")]
    found = " | ".join(dmarc)
    if not dmarc:
        return Outcome(State.MISSING, "", f"Add a TXT record on {exp.host} with the value: {exp.expected}")
    if len(dmarc) > 1:
        return Outcome(State.MISMATCH, found, "There is more than one DMARC record, so receivers ignore them all. Keep exactly one.")
    if _tags(dmarc[0]).get("p", "").lower() not in ("none", "quarantine", "reject"):
        return Outcome(State.MISMATCH, found, "The DMARC record needs a policy tag: p=none, p=quarantine or p=reject.")
    return Outcome(State.OK, found, "")


def _check_ownership(exp, rdatas):
    values = _txt_values(rdatas)
    ours = [v for v in values if v.startswith(OWNERSHIP_PREFIX)]
    found = " | ".join(ours or values)
    if exp.expected in values:
        return Outcome(State.OK, found, "")
    if not values:
        return Outcome(State.MISSING, "", f"Add a TXT record on {exp.host} with the value: {exp.expected}")
    return Outcome(State.MISMATCH, found, f"The TXT record on {exp.host} does not carry this domain's token. Set its value to: {exp.expected}")


def check(exp, domain, resolver):
    """Look one expectation up and judge what was found."""
    rdtype = "MX" if exp.kind == Kind.MX else "TXT"
    try:
        rdatas = _query(resolver, exp.host, rdtype)
    except LookupFailed as exc:
        return Outcome(State.ERROR, "", f"We could not check this record: {exc}. We will try again; if it persists, check your DNS provider.")
    if exp.kind == Kind.MX:
        return _check_mx(exp, rdatas)
    if exp.kind == Kind.SPF:
        return _check_spf(exp, rdatas)
    if exp.kind == Kind.DKIM:
        return _check_dkim(exp, rdatas, domain.dkim_public_key)
    if exp.kind == Kind.DMARC:
        return _check_dmarc(exp, rdatas)
    return _check_ownership(exp, rdatas)
