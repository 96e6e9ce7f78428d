from celery import shared_task

from qmailing.oauth import oauth_purge_stale_registrations


@shared_task
def oauth_purge_stale_registrations_task():
    """Beat runs this daily: self-registered OAuth clients that never got a token are deleted."""
    return oauth_purge_stale_registrations()
