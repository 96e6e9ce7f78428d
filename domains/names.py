"""Domain-name validation and normalisation (IDNA 2008 with UTS #46 mapping)."""

import re

import idna

from core.errors import Invalid

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_NAME_LENGTH = 253


def normalize_domain(raw, *, field="name"):
    """Return the lower-case ASCII form of a domain name, or raise Invalid with a reason."""
    if raw is None or not str(raw).strip():
        raise Invalid("Enter a domain name, such as example.com.", field=field)
    name = str(raw).strip()
    if name.endswith("."):
        name = name[:-1]
    if "@" in name:
        raise Invalid("Enter only the domain, without a mailbox: example.com rather than you@example.com.", field=field)
    if any(ch in name for ch in "/:\\ \t"):
        raise Invalid("Enter a bare domain name, without a scheme, path, port or spaces.", field=field)
    if ".." in name or name.startswith("."):
        raise Invalid("A domain name cannot contain an empty label (two dots in a row or a leading dot).", field=field)
    if name.isascii():
        ascii_name = name.lower()
    else:
        try:
            ascii_name = idna.encode(name, uts46=True, transitional=False).decode("ascii").lower()
        except (idna.IDNAError, UnicodeError) as exc:
            raise Invalid(f"{name!r} is not a valid internationalised domain name: {str(exc).rstrip('.').lower()}.", field=field) from exc
    if len(ascii_name) > MAX_NAME_LENGTH:
        raise Invalid(f"A domain name can be at most {MAX_NAME_LENGTH} characters long.", field=field)
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise Invalid("Enter a full domain name with a dot, such as example.com.", field=field)
    for label in labels:
        if not _LABEL.match(label):
            raise Invalid(
                f"The label {label!r} is not allowed: use letters, digits and hyphens, not at the start or end, "
                "at most 63 characters.",
                field=field,
            )
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError):
                raise Invalid(f"The label {label!r} is not allowed: it is not valid IDNA (punycode).", field=field)
    if labels[-1].isdigit():
        raise Invalid("An IP address is not a domain name; enter the domain that receives mail.", field=field)
    return ascii_name


def domain_to_unicode(ascii_name):
    try:
        return idna.decode(ascii_name)
    except idna.IDNAError:
        return ascii_name
