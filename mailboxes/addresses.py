"""Local-part and address validation (RFC 5321 dot-atom, ASCII; '+' kept for sub-addressing)."""

import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from core.errors import Invalid

MAX_LOCAL_PART = 64
# RFC 5322 atext without '+', which delivers user+tag@ to user@.
_ATEXT = r"[a-z0-9!#$%&'*/=?^_`{|}~-]"
_DOT_ATOM = re.compile(rf"^{_ATEXT}+(\.{_ATEXT}+)*$")

# Never hosted: addresses mail software itself uses.
SYSTEM_NAMES = frozenset({"mailer-daemon", "nobody", "no-reply-bounces"})
# RFC 2142 role names and other names users trust; on the shared domain nobody may take them.
ROLE_NAMES = frozenset({
    "postmaster", "abuse", "hostmaster", "webmaster", "security", "admin", "administrator", "root",
    "support", "info", "noreply", "no-reply", "billing", "dmarc", "ssl-admin", "www", "uucp", "ftp", "usenet", "news",
})


def normalize_local_part(raw, *, field="local_part"):
    """Return the lower-case local part or raise Invalid with the reason."""
    if raw is None or not str(raw).strip():
        raise Invalid("Enter the part before the @, such as sales.", field=field)
    value = str(raw).strip()
    if "@" in value:
        raise Invalid("Enter only the part before the @; the domain is chosen separately.", field=field)
    if not value.isascii():
        raise Invalid("Use ASCII letters, digits and . ! # $ % & ' * / = ? ^ _ ` { | } ~ - only; internationalised addresses are not supported yet.", field=field)
    value = value.lower()
    if len(value.encode()) > MAX_LOCAL_PART:
        raise Invalid(f"The part before the @ can be at most {MAX_LOCAL_PART} characters (RFC 5321).", field=field)
    if "+" in value:
        raise Invalid("'+' is reserved for sub-addressing (you+tag@ reaches you@); leave it out.", field=field)
    if value.startswith(".") or value.endswith(".") or ".." in value:
        raise Invalid("A dot cannot start or end the address, or follow another dot.", field=field)
    if not _DOT_ATOM.match(value):
        raise Invalid("Use letters, digits and . ! # $ % & ' * / = ? ^ _ ` { | } ~ - only (no spaces or quotes).", field=field)
    return value


def normalize_address(raw, *, field="address"):
    """A deliverable external address, with the domain lower-cased."""
    value = (raw or "").strip()
    try:
        validate_email(value)
    except ValidationError:
        raise Invalid(f"{value!r} is not a valid email address.", field=field)
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"
