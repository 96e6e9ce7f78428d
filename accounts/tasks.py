"""Celery tasks of accounts: thin wrappers around one service each."""

import logging

from celery import shared_task

from accounts.models import Account
from accounts.request_log import request_log_purge
from accounts.services import account_delete, accounts_deletion_due
from core.enqueue import enqueue_now

logger = logging.getLogger(__name__)


@shared_task
def request_log_purge_task():
    purged = request_log_purge()
    if purged:
        logger.info("purged %d request log row(s) older than 30 days", purged)
    return purged


@shared_task
def accounts_closed_sweep_task():
    """Beat, every QMAILING_SWEEP_SECONDS: the deletion of every closed account whose task was lost, enqueued again."""
    due = accounts_deletion_due()
    for account_id in due:
        enqueue_now(account_delete_task, str(account_id))  # still recorded: the next sweep tries again
    return len(due)


@shared_task
def account_delete_task(account_id):
    """Delete a closed account (accounts.services.account_close ran in the request) and everything it owns."""
    account = Account.objects.filter(pk=account_id).first()
    if account is not None:
        account_delete(account=account)
