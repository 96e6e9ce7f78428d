"""Dates as people read them: "14:05" today, "Yesterday", "Mon", "3 Nov", "3 Nov 2024"; and "5 minutes ago".

Rendered in the server's time zone inside <time datetime="…"> (see templates/base.html), which the page's
script rewrites in the reader's own time zone; without the script the server's wording stays.
"""

from datetime import timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

register = template.Library()


def mail_date_text(value, *, now=None):
    now = timezone.localtime(now or timezone.now())
    local = timezone.localtime(value)
    days = (now.date() - local.date()).days
    if days == 0:
        return local.strftime("%H:%M")
    if days == 1:
        return "Yesterday"
    if 1 < days < 7:
        return local.strftime("%a")
    if local.year == now.year:
        return f"{local.day} {local:%b}"
    return f"{local.day} {local:%b} {local.year}"


def ago_text(value, *, now=None):
    now = now or timezone.now()
    if now - value < timedelta(minutes=1):
        return "just now"
    return f"{timesince(value, now, depth=1)} ago".replace("\xa0", " ")


def _exact(value):
    local = timezone.localtime(value)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M %Z}"


@register.filter
def maildate(value):
    """<time> with the short list date; the full date and time in its title."""
    if not value:
        return ""
    return format_html('<time datetime="{}" data-when="list" title="{}">{}</time>', value.isoformat(),
                       _exact(value), mail_date_text(value))


@register.filter
def ago(value):
    """<time> saying how long ago ("3 hours ago"); the full date and time in its title."""
    if not value:
        return ""
    return format_html('<time datetime="{}" data-when="ago" title="{}">{}</time>', value.isoformat(),
                       _exact(value), ago_text(value))
