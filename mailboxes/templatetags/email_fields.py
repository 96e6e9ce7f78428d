"""Template filters for mail fields; they return plain strings, so autoescaping still applies."""

from django import template

from mailboxes.inbound.parsing import safe_filename

register = template.Library()


def _person(person):
    name, address = person.get("name") or "", person.get("address") or ""
    return f"{name} <{address}>" if name and address else name or address


@register.filter
def addresses(people):
    """[{"name", "address"}, …] as "Name <address>, other@example.com"."""
    return ", ".join(filter(None, (_person(person) for person in people or ())))


@register.filter
def sender(email):
    return email.from_name or email.from_address or "(unknown sender)"


@register.filter
def filename(attachment):
    """An attachment's name as shown: no bidi override or invisible character can disguise it."""
    return safe_filename(attachment.filename)
