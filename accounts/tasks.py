"""Celery tasks of accounts: thin wrappers around one service each."""

import logging

from celery import shared_task

from accounts.request_log import request_log_purge

logger = logging.getLogger(__name__)


@shared_task
def request_log_purge_task():
    purged = request_log_purge()
    if purged:
        logger.info("purged %d request log row(s) older than 30 days", purged)
    return purged
