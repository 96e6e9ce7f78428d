"""Glue between Django forms and the one error family: a service's Invalid lands on the form."""

from django.urls import reverse
from django.utils.html import format_html

from core.errors import AppError, Invalid


def app_error_message(exc: AppError):
    """The words of a service error for a page; a plan error (402) ends with a link to the plan page."""
    if "upgradeUrl" in exc.extra:
        return format_html('{} <a href="{}">See the plans and how to upgrade</a>.', exc.detail, reverse("plan"))
    return exc.detail


def add_app_error(form, exc: AppError):
    """Show a service error on a form: field errors beside their fields, anything else on top."""
    if isinstance(exc, Invalid) and exc.errors:
        for field, messages in exc.errors.items():
            target = field if field in form.fields else None
            for message in messages:
                form.add_error(target, message)
    else:
        form.add_error(None, app_error_message(exc))
