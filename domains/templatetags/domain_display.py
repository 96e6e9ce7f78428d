"""Template filters for the domain pages: names as people write them (times: qmailing's `when` filters)."""

from django import template

from domains.names import domain_to_unicode

register = template.Library()


@register.filter
def unicode_host(host):
    """A DNS host name with its punycode (xn--) labels in Unicode: _dmarc.xn--bcher-kva.example is
    _dmarc.bücher.example (idna rejects the underscore label, so each label is decoded on its own)."""
    labels = str(host or "").split(".")
    return ".".join(_label_to_unicode(label) for label in labels)


def _label_to_unicode(label):
    if not label.lower().startswith("xn--"):
        return label
    try:
        return domain_to_unicode(label)
    except (UnicodeError, ValueError):
        return label
