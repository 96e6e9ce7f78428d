"""Sender Rewriting Scheme (SRS0) for the envelope sender of forwarded mail.

A forwarded copy leaves with the original sender in its From header, but the envelope sender must be
an address of the forwarding domain: otherwise SPF fails at the next hop (our servers are not in the
original sender's SPF record), and a bounce must come back to us to be checked. The rewritten address
is SRS0=HHHH=TT=original-domain=original-local@forwarding-domain (the scheme of Shevek's reference
implementation): TT is the day in base32, modulo 1024, and HHHH a keyed hash of TT and the original
address, so nobody can make us relay to an address of their choosing. The one Python package
(pysrs 1.0.3) no longer runs on Python 3.9 and later (base64.encodestring), hence this small module.
"""

import base64
import hashlib
import hmac
import time

from django.conf import settings

SRS_MAX_AGE_DAYS = 21
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_HASH_LENGTH = 4


def _today():
    return int(time.time() // 86400)


def _timestamp(day):
    day %= 1024
    return _BASE32[day >> 5] + _BASE32[day & 31]


def _hash(timestamp, domain, local):
    key = ("srs:" + settings.SECRET_KEY).encode()
    digest = hmac.new(key, f"{timestamp}{domain}{local}".lower().encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()[:_HASH_LENGTH]


def srs_forward(sender, *, forwarding_domain):
    """The envelope sender for a copy of mail from `sender` forwarded by `forwarding_domain`.

    A null sender (a bounce) stays null; a sender already in the forwarding domain stays as it is.
    """
    local, at, domain = (sender or "").rpartition("@")
    if not at or not local or not domain:
        return ""
    if domain.lower() == forwarding_domain.lower():
        return sender
    timestamp = _timestamp(_today())
    return f"SRS0={_hash(timestamp, domain, local)}={timestamp}={domain}={local}@{forwarding_domain}"


def srs_reverse(address):
    """The original sender of an SRS0 address we made (within SRS_MAX_AGE_DAYS), or None."""
    local, at, _ = (address or "").rpartition("@")
    if not at or not local[:5].upper() == "SRS0=":
        return None
    parts = local[5:].split("=", 3)
    if len(parts) != 4:
        return None
    given_hash, timestamp, domain, original_local = parts
    if len(timestamp) != 2 or any(ch not in _BASE32 for ch in timestamp.upper()):
        return None
    if not hmac.compare_digest(given_hash.encode(), _hash(timestamp.upper(), domain, original_local).encode()):
        return None
    day = (_BASE32.index(timestamp.upper()[0]) << 5) | _BASE32.index(timestamp.upper()[1])
    if (_today() - day) % 1024 > SRS_MAX_AGE_DAYS:
        return None
    return f"{original_local}@{domain}"
