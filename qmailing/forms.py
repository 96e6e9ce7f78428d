"""Glue between Django forms and the one error family: a service's Invalid lands on the form."""

from qmailing.errors import AppError, Invalid


def add_app_error(form, exc: AppError):
    """Show a service error on a form: field errors beside their fields, anything else on top."""
    if isinstance(exc, Invalid) and exc.errors:
        for field, messages in exc.errors.items():
            target = field if field in form.fields else None
            for message in messages:
                form.add_error(target, message)
    else:
        form.add_error(None, exc.detail)
