import logging

from celery import shared_task

from agent.oauth import oauth_purge_stale_registrations
from agent.oauth_validator import oauth_purge_used_codes
from mailboxes.token_limits import oauth_limits_purge

logger = logging.getLogger(__name__)


@shared_task
def oauth_purge_stale_registrations_task():
    """Beat runs this daily: self-registered OAuth clients that never got a token are deleted, and used
    authorization codes past their retention and mailbox limits no code or refresh token can use any more are
    forgotten. Returns how many clients were deleted."""
    logger.info("%s used authorization codes forgotten", oauth_purge_used_codes())
    logger.info("%s unused OAuth mailbox limits forgotten", oauth_limits_purge())
    return oauth_purge_stale_registrations()
