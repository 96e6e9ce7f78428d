"""Who really sent an inbound message: SPF, DKIM, DMARC (and ARC when present), checked on arrival.

Mail from the outside world (SMTP, the Mailgun webhook) is checked before it is stored, outside any
database transaction; the result is stored on `Email.authentication` and stamped on the stored copy as
an RFC 8601 `Authentication-Results` header carrying our authserv-id (`QMAILING_MX_HOST`). Local
deliveries between hosted mailboxes, forwarded copies and imports are not checked: their
`authentication` stays `{}` ("not checked"), which is different from a checked message's "none".

`verdict` is the one word to act on:

- "pass": the From domain is authenticated: DMARC passed, or the domain publishes no DMARC record and
  an SPF or DKIM pass is aligned with it (same organisational domain).
- "fail": the From domain publishes DMARC and neither SPF nor DKIM passed aligned with it: treat the
  From address as forged, whatever the policy (the policy is in `dmarc.policy`).
- "none": nothing could vouch for the From domain (no DMARC record, no aligned pass); not proven forged.
- "temperror": a DNS lookup needed for the answer timed out, failed or ran past the time budget.
- "permerror": there is no single From domain to check (none, several, or one that mail parsers read
  differently), its DMARC record is unreadable, or the header section is beyond our bounds.

The details follow RFC 8601 result words: `spf` {result, domain, identity, client_ip, helo, reason},
`dkim` [{result, domain, selector, reason}], `dmarc` {result, policy, from_domain, record_domain,
aligned, reason}, and `arc` {result, sets, sealers, reason} when the message carries ARC headers.
ARC is recorded for information only: we trust no sealer yet, so it never changes the verdict.

The libraries: pyspf evaluates SPF (its DNS driver, `spf.DNSLookup`, is pointed at our resolvers
below), dkimpy verifies DKIM and ARC, authheaders finds and parses DMARC records and authres writes
the header clauses. Every lookup goes to `QMAILING_DNS_RESOLVERS` with `QMAILING_DNS_TIMEOUT`, and all
of a message's lookups share one time budget; nothing here raises.

Answers are cached in the process for their TTL (dnspython's LRU cache, at most DNS_CACHE_ENTRIES names and
types): a sender's SPF record, DKIM key and DMARC policy are looked up once per TTL, not once per message, as
any caching resolver in front of an MTA would. Negative answers are cached as long as their SOA says; failures
(timeouts, SERVFAIL) never are, so a temperror is not repeated from the cache.
"""

import functools
import importlib.resources
import ipaddress
import logging
import re
import threading
import time
from contextvars import ContextVar
from email.parser import BytesParser
from email.utils import getaddresses

import dkim
import dns.exception
import dns.name
import dns.resolver
import idna
import spf
from authheaders.dmarc_lookup import DMARCException, lookup_receiver_record
from authres import DKIMAuthenticationResult, SPFAuthenticationResult
from authres.arc import ARCAuthenticationResult
from authres.dmarc import DMARCAuthenticationResult
from django.conf import settings
from publicsuffix2 import PublicSuffixList

from domains.dns import build_resolver
from mailboxes.inbound.parsing import MODERN_POLICY

logger = logging.getLogger(__name__)
# dkimpy logs a sender's missing key or broken signature at ERROR: the sender's problem, kept in `reason`.
_dkimpy_logger = logging.getLogger(f"{__name__}.dkimpy")
_dkimpy_logger.setLevel(logging.CRITICAL)

TIME_BUDGET_SECONDS = 15  # all DNS lookups of one message; SMTP clients wait minutes for the DATA reply
MAX_HEADER_BYTES = 1024 * 1024  # beyond these the header section is not parsed for DKIM, ARC or DMARC
MAX_HEADER_FIELDS = 1000
MAX_DKIM_SIGNATURES = 5  # five are verified (those of the From domain first), the rest ignored
MAX_ARC_SETS = 10
# DKIM and ARC canonicalise the whole body once per signature, seconds for 35 MB of crafted whitespace:
# at most this many body bytes per message (the first DKIM signature is always verified).
MAX_BODY_BYTES_VERIFIED = 64 * 1024 * 1024
UNTRUSTED_NAME = b"X-Untrusted-Authentication-Results"

SPF_RESULTS = {"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"}


class _DnsTrouble(Exception):
    """A lookup that timed out, got SERVFAIL or an unreadable reply, or ran past the message's budget."""


class _Unusable(Exception):
    """A header section we will not parse (beyond the bounds, or not a header section at all)."""


# --- DNS -------------------------------------------------------------------------------------------

DNS_CACHE_ENTRIES = 10_000
_resolvers, _resolvers_lock = {}, threading.Lock()


def _shared_resolver():
    """One resolver, with its TTL-bound LRU cache, per resolver configuration, shared by every message's checks
    (dnspython's Resolver and LRUCache are safe to use from several threads)."""
    key = (tuple(settings.QMAILING_DNS_RESOLVERS), settings.QMAILING_DNS_TIMEOUT)
    resolver = _resolvers.get(key)
    if resolver is None:
        with _resolvers_lock:
            resolver = _resolvers.get(key)
            if resolver is None:
                resolver = build_resolver()
                resolver.cache = dns.resolver.LRUCache(max_size=DNS_CACHE_ENTRIES)
                _resolvers.clear()  # the configuration changed: the answers of the old one go
                _resolvers[key] = resolver
    return resolver


def dns_cache_clear():
    """Forget every cached answer (tests whose DNS server changes under one configuration)."""
    with _resolvers_lock:
        _resolvers.clear()


class _Lookups:
    """The DNS lookups of one message: our resolvers, each lookup's timeout, one deadline for all."""

    def __init__(self, *, time_budget):
        self.deadline = time.monotonic() + time_budget
        self.resolver, self.problem = None, ""
        try:
            self.resolver = _shared_resolver()
        except Exception as exc:  # no resolver configured on this host, say
            self.problem = _short(exc)

    def answer(self, name, rdtype):
        """The records of one type at a name; [] when there are none; _DnsTrouble when DNS cannot say."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _DnsTrouble("the time allowed for this message's DNS lookups ran out")
        if self.resolver is None:
            raise _DnsTrouble(f"no DNS resolver is available ({self.problem})")
        try:
            qname = dns.name.from_text(name)
        except (dns.exception.DNSException, ValueError):
            return []  # not a name DNS can hold, so nothing is published there
        lifetime = min(settings.QMAILING_DNS_TIMEOUT, remaining)
        try:
            answer = self.resolver.resolve(qname, rdtype, lifetime=lifetime, search=False, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout:
            raise _DnsTrouble(f"the lookup of {_printable(name)} {rdtype} timed out")
        except dns.resolver.NoNameservers:
            raise _DnsTrouble(f"no DNS server answered {_printable(name)} {rdtype} (SERVFAIL or an unreadable reply)")
        except (dns.exception.DNSException, OSError, ValueError) as exc:
            raise _DnsTrouble(f"the lookup of {_printable(name)} {rdtype} failed ({_short(exc)})")
        return list(answer)

    def txt(self, name):
        return [b"".join(rdata.strings) for rdata in self.answer(name, "TXT")]

    def dkim_key(self, name, timeout=None):
        """dkimpy's dnsfunc: the first TXT record at selector._domainkey.domain, or None."""
        try:
            text = name.decode("ascii")
        except UnicodeDecodeError:
            return None
        records = self.txt(text)
        return records[0] if records else None

    def dmarc_record(self, name):
        """authheaders' dnsfunc: the one TXT record that starts with v=DMARC1, or None (none, or several)."""
        records = [text for text in (raw.decode("utf-8", "replace") for raw in self.txt(name))
                   if text.startswith("v=DMARC1")]
        return records[0] if len(records) == 1 else None  # RFC 7489 §6.6.3: several records count as none


# pyspf resolves through the module-level DNSLookup (its pluggable DNS driver, which its own test suite
# replaces too). Ours answers from the message's _Lookups while an SPF check of ours runs, and leaves any
# other pyspf caller in this process with the library's own driver.
_spf_lookups = ContextVar("spf_lookups", default=None)
_library_spf_lookup = spf.DNSLookup


def _spf_dns_lookup(name, qtype, strict=True, timeout=None):
    lookups = _spf_lookups.get()
    if lookups is None:
        return _library_spf_lookup(name, qtype, strict, timeout)
    try:
        rdatas = lookups.answer(name, qtype)
    except _DnsTrouble as exc:
        raise spf.TempError(f"DNS {exc}")
    found = []
    for rdata in rdatas:
        if qtype in ("A", "AAAA"):
            found.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            found.append(((name, qtype), (rdata.preference, rdata.exchange.to_text(omit_final_dot=True))))
        elif qtype == "PTR":
            found.append(((name, qtype), rdata.target.to_text(omit_final_dot=True)))
        elif qtype in ("TXT", "SPF"):
            found.append(((name, qtype), rdata.strings))
    return found


spf.DNSLookup = _spf_dns_lookup


# --- names -----------------------------------------------------------------------------------------

_HOSTNAME = re.compile(r"(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+(?!\d+$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _domain(text):
    """A domain name as DNS holds it (lower case, A-labels), or "" when it is not one."""
    text = str(text or "").strip().rstrip(".").lower()
    if not text.isascii():
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # raw UTF-8 read as bytes
        try:
            text = idna.encode(text, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            return ""
    return text if _HOSTNAME.fullmatch(text) else ""


@functools.cache
def _public_suffixes():
    # The list authheaders ships (it keeps it current), read once: authheaders re-reads it per call.
    with importlib.resources.as_file(importlib.resources.files("authheaders") / "public_suffix_list.txt") as path:
        with open(path, encoding="utf-8") as handle:
            return PublicSuffixList(handle)


def organizational_domain(domain):
    """RFC 7489 §3.2: the public suffix plus one label (a suffix not on the list is its last label)."""
    registered = _public_suffixes().get_sld(domain, strict=True)
    # Non-strict lookups answer "example" for both a.example and b.example, which would align strangers.
    return registered or ".".join(domain.split(".")[-2:])


def _aligned(domain, from_domain, *, strict):
    if not domain:
        return False
    return domain == from_domain if strict else organizational_domain(domain) == organizational_domain(from_domain)


def _printable(text, limit=200):
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text or "")
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:limit]


def _short(exc):
    return _printable(str(exc) or exc.__class__.__name__)


# --- the header section, bounded -------------------------------------------------------------------

_HEADER_END = re.compile(rb"\r?\n\r?\n")  # where dkimpy's parser ends the header section
_LINE_END = re.compile(rb"\r?\n")


def _header_section(raw):
    """(header fields as dkimpy parses them, the rest of the message) within MAX_HEADER_BYTES and _FIELDS."""
    if raw[:1] == b"\n" or raw[:2] == b"\r\n":
        return [], raw[raw.index(b"\n") + 1:]
    end = _HEADER_END.search(raw, 0, MAX_HEADER_BYTES + 4)
    if end:
        head, rest = raw[:end.start()], raw[end.end():]
    elif len(raw) <= MAX_HEADER_BYTES:
        head, rest = raw, b""
    else:
        raise _Unusable(f"the header section is larger than {MAX_HEADER_BYTES} bytes")
    try:
        fields, _ = dkim.rfc822_parse(head)
    except (dkim.DKIMException, IndexError) as exc:
        raise _Unusable(f"the header section could not be read ({_short(exc)})")
    if len(fields) > MAX_HEADER_FIELDS:
        raise _Unusable(f"the header section has more than {MAX_HEADER_FIELDS} fields")
    return fields, rest


def _verifier(kind, fields, rest):
    """A dkimpy DKIM or ARC verifier over the bounded parse (dkimpy's own parse splits the whole message into lines)."""
    verifier = kind(logger=_dkimpy_logger)
    verifier.headers = [[name, value] for name, value in fields]
    verifier.body = _LINE_END.sub(b"\r\n", rest)  # what dkimpy's parser makes of the body
    return verifier


def _named(fields, *names):
    return [value for name, value in fields if name.lower() in names]


def _from_domain(fields):
    """The one From domain (RFC 7489 §6.6.1), or ("", why not)."""
    values = _named(fields, b"from")
    if not values:
        return "", "the message has no From header"
    domains = set()
    for value in values:
        text = _LINE_END.sub(b"", value).decode("utf-8", "replace")
        for _name, address in getaddresses([text]):
            if "@" in address:
                domains.add(_domain(address.rpartition("@")[2]))
    if not domains:
        return "", "the From header has no address"
    if len(domains) > 1:
        return "", "the From header names more than one domain"
    domain = domains.pop()
    return (domain, "") if domain else ("", "the From domain is not a valid domain name")


def _displayed_from_domains(raw):
    """The From domains as the stored copy's parser (inbound.parsing) reads them, or None.

    Parsers disagree on odd header sections (a bare CR ends a line for Python, not for dkimpy), so
    the domain we authenticate must be the one people are shown, or the verdict would vouch for
    another address than Email.from_address.
    """
    try:
        message = BytesParser(policy=MODERN_POLICY).parsebytes(raw[:MAX_HEADER_BYTES + 4], headersonly=True)
        addresses = []
        for header in message.get_all("from") or []:
            try:
                addresses += [address.addr_spec for address in header.addresses]
            except Exception:
                addresses += [address for _name, address in getaddresses([str(header)])]
    except Exception:
        return None
    return {_domain(address.rpartition("@")[2]) for address in addresses if "@" in address}


_TOP_RECEIVED = re.compile(r"\s*from\s+(\S+)\s*\([^()\[]*\[(?:ipv6:)?([0-9a-f:.]+)\]", re.IGNORECASE)  # from HELO (rDNS [IP])


def top_received_client(raw):
    """(client IP, HELO name) from the topmost Received header, ("", "") when it names none.

    Only for a message handed over by a relay we trust to prepend its own Received line (Mailgun's
    signed webhook): that line records the server which gave the relay the message.
    """
    try:
        fields, _ = _header_section(bytes(raw))
    except _Unusable:
        return "", ""
    received = _named(fields, b"received")
    if not received:
        return "", ""
    match = _TOP_RECEIVED.match(_LINE_END.sub(b" ", received[0]).decode("latin-1"))
    if not match:
        return "", ""
    try:
        address = str(ipaddress.ip_address(match.group(2)))
    except ValueError:
        return "", ""
    return address, _printable(match.group(1), 255)


# --- the checks ------------------------------------------------------------------------------------

def _spf(lookups, *, client_ip, helo, mail_from):
    """SPF (RFC 7208) for the MAIL FROM domain, or the HELO name when the envelope sender is null."""
    identity = "mailfrom" if "@" in mail_from else "helo"
    local, _, sender_domain = mail_from.rpartition("@")
    domain = _domain(sender_domain if identity == "mailfrom" else helo)
    entry = {"result": "none", "domain": domain, "identity": identity, "client_ip": client_ip,
             "helo": _printable(helo, 255), "reason": ""}
    if not client_ip:
        entry["reason"] = "the address of the sending server is not known"
        return entry
    if not domain:
        entry["reason"] = "there is no valid domain to check"
        return entry
    local = re.sub(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]", "", local) or "postmaster"
    token = _spf_lookups.set(lookups)
    try:
        if identity == "mailfrom":
            query = spf.query(i=client_ip, s=f"{local}@{domain}", h=helo or domain, timeout=settings.QMAILING_DNS_TIMEOUT)
        else:  # null sender: pyspf checks postmaster@HELO
            query = spf.query(i=client_ip, s="", h=domain, timeout=settings.QMAILING_DNS_TIMEOUT)
        result, _code, explanation = query.check()
    except spf.PermError as exc:  # raised before checking, e.g. an unusable client address
        result, explanation = "permerror", str(exc)
    except Exception as exc:
        logger.warning("SPF check of %s from %s failed", domain, client_ip, exc_info=True)
        result, explanation = "temperror", f"the SPF check failed ({_short(exc)})"
    finally:
        _spf_lookups.reset(token)
    entry["result"] = result if result in SPF_RESULTS else "permerror"
    entry["reason"] = _printable(explanation)
    return entry


def _tag_values(value):
    try:
        return dkim.util.parse_tag_value(_LINE_END.sub(b"", value))
    except Exception:
        return {}


class _BodyAllowance:
    """The body bytes DKIM and ARC may still canonicalise for this message (MAX_BODY_BYTES_VERIFIED)."""

    def __init__(self):
        self.left, self.used = MAX_BODY_BYTES_VERIFIED, False

    def take(self, size, *, first_is_free=False):
        if size > self.left and not (first_is_free and not self.used):
            return False
        self.left, self.used = self.left - size, True
        return True


def _dkim(lookups, fields, rest, *, from_domain, allowance):
    """Every DKIM-Signature (RFC 6376), in header order; those of the From domain are verified first."""
    signatures = _named(fields, b"dkim-signature")
    if not signatures:
        return []
    verifier, results = _verifier(dkim.DKIM, fields, rest), []
    for value in signatures[:4 * MAX_DKIM_SIGNATURES]:  # verify_headerprep counts every one, so indexes still match
        tags = _tag_values(value)
        results.append({"result": "policy", "domain": _domain(_printable(tags.get(b"d", b""))),
                        "selector": re.sub(r"[^a-z0-9._-]", "", _printable(tags.get(b"s", b"")).lower())[:63],
                        "reason": f"not verified: at most {MAX_DKIM_SIGNATURES} signatures are checked"})
    # DMARC needs the From domain's signature: a sender's other signatures must not crowd it out.
    order = sorted(range(len(results)), key=lambda index: not (
        from_domain and _aligned(results[index]["domain"], from_domain, strict=False)))
    for index in order[:MAX_DKIM_SIGNATURES]:
        entry = results[index]
        if not allowance.take(len(rest), first_is_free=True):
            entry["reason"] = "not verified: the message is too large to verify more signatures"
            continue
        entry.update(result="fail", reason="")
        try:
            if verifier.verify(idx=index, dnsfunc=lookups.dkim_key):
                entry["result"] = "pass"
            else:
                entry["reason"] = "the signature does not verify, or no usable key is published"
        except _DnsTrouble as exc:
            entry.update(result="temperror", reason=str(exc))
        except dkim.DKIMException as exc:
            entry["reason"] = _short(exc)
        except Exception as exc:  # hostile input may trip the library anywhere; it is still not a pass
            logger.warning("DKIM verification raised", exc_info=True)
            entry.update(result="permerror", reason=_short(exc))
    return results


def _arc(lookups, fields, rest, *, allowance):
    """The ARC chain (RFC 8617), when the message carries one."""
    if not _named(fields, *dkim.ARC.ARC_HEADERS):
        return None
    sets = len(_named(fields, b"arc-seal"))
    entry = {"result": "fail", "sets": sets, "sealers": [], "reason": ""}
    if sets > MAX_ARC_SETS:
        entry["reason"] = f"more than {MAX_ARC_SETS} ARC sets"
        return entry
    if not allowance.take(len(rest) * max(sets, 1)):
        entry["reason"] = "not verified: the message is too large to verify its ARC chain"
        return entry
    try:
        validation, chain, comment = _verifier(dkim.ARC, fields, rest).verify(dnsfunc=lookups.dkim_key)
    except _DnsTrouble as exc:
        entry.update(result="temperror", reason=str(exc))
        return entry
    except Exception as exc:
        entry["reason"] = _short(exc)
        return entry
    entry["result"] = validation.decode("ascii") if validation else "fail"  # None: a sealer recorded a failure
    entry["sealers"] = [_domain(_printable(link.get("as-domain", b""))) for link in chain]
    entry["reason"] = "" if entry["result"] == "pass" else _printable(comment)
    return entry


def _dmarc(lookups, *, from_domain, why_no_domain, spf_entry, dkim_entries):
    """DMARC (RFC 7489 §6.6): policy discovery at the From domain, then its organisational domain."""
    entry = {"result": "none", "policy": "", "from_domain": from_domain, "record_domain": "", "aligned": [],
             "reason": ""}
    if not from_domain:
        entry.update(result="permerror", reason=why_no_domain)
        return entry
    relaxed = _passing_aligned(from_domain, spf_entry, dkim_entries, strict_spf=False, strict_dkim=False)
    try:
        record, record_domain = lookup_receiver_record(from_domain, lookups.dmarc_record), from_domain
        organizational = organizational_domain(from_domain)
        if not record and organizational != from_domain:
            record, record_domain = lookup_receiver_record(organizational, lookups.dmarc_record), organizational
    except _DnsTrouble as exc:
        entry.update(result="temperror", reason=str(exc), aligned=relaxed)
        return entry
    except DMARCException as exc:
        entry.update(result="permerror", reason=f"the DMARC record cannot be read ({_short(exc)})", aligned=relaxed)
        return entry
    if not record:
        entry.update(aligned=relaxed, reason="the domain publishes no DMARC record")
        return entry
    policy = record.get("p", "")
    if record_domain != from_domain:
        policy = record.get("sp", policy)  # a subdomain's mail falls under sp= when the record has one
    entry["record_domain"] = record_domain
    if policy not in ("none", "quarantine", "reject"):
        entry.update(result="permerror", reason="the DMARC record has no valid policy", aligned=relaxed)
        return entry
    aligned = _passing_aligned(from_domain, spf_entry, dkim_entries, strict_spf=record.get("aspf") == "s",
                               strict_dkim=record.get("adkim") == "s")
    entry.update(policy=policy, aligned=aligned, result="pass" if aligned else "fail")
    if not aligned and _any_temperror(spf_entry, dkim_entries):
        entry.update(result="temperror", reason="SPF or DKIM could not be checked")
    return entry


def _passing_aligned(from_domain, spf_entry, dkim_entries, *, strict_spf, strict_dkim):
    aligned = []
    if spf_entry["result"] == "pass" and _aligned(spf_entry["domain"], from_domain, strict=strict_spf):
        aligned.append("spf")
    if any(item["result"] == "pass" and _aligned(item["domain"], from_domain, strict=strict_dkim) for item in dkim_entries):
        aligned.append("dkim")
    return aligned


def _any_temperror(spf_entry, dkim_entries):
    return spf_entry["result"] == "temperror" or any(item["result"] == "temperror" for item in dkim_entries)


def _verdict(*, spf_entry, dkim_entries, dmarc_entry):
    """The one word for agents, with a sentence saying why."""
    result, domain, aligned = dmarc_entry["result"], dmarc_entry["from_domain"], dmarc_entry["aligned"]
    how = " and ".join(mechanism.upper() for mechanism in aligned)
    if result == "pass":
        return "pass", f"DMARC passed for {domain} ({how} aligned)"
    if result == "fail":
        return "fail", f"{domain} publishes DMARC (p={dmarc_entry['policy']}) and neither SPF nor DKIM passed for it"
    if not domain:
        return "permerror", dmarc_entry["reason"]
    if result == "temperror":
        exact = _passing_aligned(domain, spf_entry, dkim_entries, strict_spf=True, strict_dkim=True)
        if exact:  # passes under any DMARC record, so the record we could not read cannot change it
            return "pass", f"{' and '.join(m.upper() for m in exact)} passed for {domain} itself (DMARC record not read: {dmarc_entry['reason']})"
        return "temperror", dmarc_entry["reason"]
    if aligned:
        return "pass", f"{how} passed aligned with {domain} ({dmarc_entry['reason']})"
    if result == "permerror":
        return "permerror", dmarc_entry["reason"]
    if _any_temperror(spf_entry, dkim_entries):
        return "temperror", f"SPF or DKIM for {domain} could not be checked"
    return "none", f"nothing vouches for {domain}: no DMARC record and no aligned SPF or DKIM pass"


def message_authenticate(*, raw: bytes, client_ip: str, helo: str, mail_from: str,
                         time_budget: float = TIME_BUDGET_SECONDS) -> dict:
    """Check SPF, DKIM, DMARC and ARC for a message from the outside world; never raises.

    `raw` is the message as the client sent it (before our trace headers), `client_ip`, `helo` and
    `mail_from` the SMTP connection's. Returns the dict stored on Email.authentication (module docstring).
    Does DNS work for up to `time_budget` seconds: call it outside any transaction.
    """
    record = {"verdict": "temperror", "reason": "", "authserv_id": settings.QMAILING_MX_HOST}
    try:
        lookups = _Lookups(time_budget=time_budget)
        raw, mail_from, helo = bytes(raw), str(mail_from or ""), str(helo or "")
        record["spf"] = spf_entry = _spf(lookups, client_ip=str(client_ip or ""), helo=helo, mail_from=mail_from)
        try:
            fields, rest = _header_section(raw)
        except _Unusable as exc:
            record.update(verdict="permerror", reason=str(exc), dkim=[],
                          dmarc={"result": "permerror", "policy": "", "from_domain": "", "record_domain": "",
                                 "aligned": [], "reason": str(exc)})
            return record
        from_domain, why_no_domain = _from_domain(fields)
        if from_domain and _displayed_from_domains(raw) != {from_domain}:
            from_domain, why_no_domain = "", "the From header reads differently to different mail parsers"
        allowance = _BodyAllowance()
        record["dkim"] = dkim_entries = _dkim(lookups, fields, rest, from_domain=from_domain, allowance=allowance)
        arc_entry = _arc(lookups, fields, rest, allowance=allowance)
        if arc_entry is not None:
            record["arc"] = arc_entry
        record["dmarc"] = dmarc_entry = _dmarc(lookups, from_domain=from_domain, why_no_domain=why_no_domain,
                                               spf_entry=spf_entry, dkim_entries=dkim_entries)
        record["verdict"], record["reason"] = _verdict(spf_entry=spf_entry, dkim_entries=dkim_entries,
                                                       dmarc_entry=dmarc_entry)
    except Exception:
        logger.exception("authentication check failed")
        record.update(verdict="temperror", reason="the authentication check failed unexpectedly")
    return record


# --- the stored copy -------------------------------------------------------------------------------

_HEADER_TOKEN = re.compile(r"[^A-Za-z0-9._:\[\]-]")


def _token(value, limit=253):
    return _HEADER_TOKEN.sub("", str(value or ""))[:limit] or None


def authentication_results_header(authentication) -> bytes:
    """Our Authentication-Results header (RFC 8601) for a stored record; every value is a plain token."""
    spf_entry = authentication.get("spf") or {}
    clauses = [SPFAuthenticationResult(
        result=spf_entry.get("result") or "none",
        smtp_mailfrom=_token(spf_entry.get("domain")) if spf_entry.get("identity") == "mailfrom" else None,
        smtp_helo=_token(spf_entry.get("helo")))]
    dkim_entries = authentication.get("dkim") or []
    clauses += [DKIMAuthenticationResult(result=item["result"], header_d=_token(item.get("domain")),
                                         header_s=_token(item.get("selector"), 63)) for item in dkim_entries]
    if not dkim_entries:
        clauses.append(DKIMAuthenticationResult(result="none"))
    arc_entry = authentication.get("arc")
    if arc_entry:
        if arc_entry["result"] == "temperror":  # ARC results are pass, fail or none (RFC 8617 §2.2)
            clauses.append(ARCAuthenticationResult(result="fail", result_comment="DNS lookup failed"))
        else:
            clauses.append(ARCAuthenticationResult(result=arc_entry["result"]))
    dmarc_entry = authentication.get("dmarc") or {}
    clauses.append(DMARCAuthenticationResult(result=dmarc_entry.get("result") or "none",
                                             header_from=_token(dmarc_entry.get("from_domain")),
                                             policy=_token(dmarc_entry.get("policy"))))
    authserv_id = _token(authentication.get("authserv_id") or settings.QMAILING_MX_HOST)
    text = f"Authentication-Results: {authserv_id};\r\n\t" + ";\r\n\t".join(str(clause) for clause in clauses) + "\r\n"
    return text.encode("ascii", "replace")


_AR_NAME = re.compile(rb"(?:^|(?<=[\r\n]))(authentication-results)[ \t]*:", re.IGNORECASE)
_FOLDED_VALUE = re.compile(rb"[^\r\n]*(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*")
_COMMENT = re.compile(r"\([^()]*\)")


def _claims_our_id(value):
    """Whether a header value's authserv-id is ours, or cannot be told (RFC 8601 §5: then it must go too)."""
    text = re.sub(r"[\r\n]", "", value.decode("latin-1")).lower()
    for _ in range(50):
        text, found = _COMMENT.subn("", text)
        if not found:
            break
    before_results = text.split("=", 1)[0]  # the authserv-id precedes every result
    return ";" not in text or settings.QMAILING_MX_HOST.lower() in before_results


def untrusted_results_renamed(raw: bytes) -> bytes:
    """Sender-supplied Authentication-Results claiming our authserv-id, renamed X-Untrusted-….

    RFC 8601 §5: such a header was not added by us and must not be read as our verdict. Renaming (not
    deleting) keeps the evidence. Line starts are found after CR as well as LF, as lenient parsers do.
    """
    end = _HEADER_END.search(raw)
    end = end.start() if end else len(raw)
    spans = []
    for match in _AR_NAME.finditer(raw, 0, end):
        value = _FOLDED_VALUE.match(raw, match.end(), min(end, match.end() + 4096)).group()
        if _claims_our_id(value):
            spans.append(match.span(1))
    if not spans:
        return raw
    pieces, last = [], 0
    for start, stop in spans:
        pieces += [raw[last:start], UNTRUSTED_NAME]
        last = stop
    pieces.append(raw[last:])
    return b"".join(pieces)


def authentication_stamp(*, raw: bytes, authentication: dict) -> bytes:
    """The copy to store: our Authentication-Results on top, the sender's claims to our id renamed."""
    if not authentication:
        return raw
    return authentication_results_header(authentication) + untrusted_results_renamed(bytes(raw))
