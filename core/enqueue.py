"""Waking a worker after a commit, for work that is already recorded in the database.

    enqueue_on_commit(email_forward_task, str(email.pk))

The row (a status, a due time) is the record of the work; the Celery message is only a wake-up, and a sweep
driven by the database (mailboxes.work, accounts.tasks) finds whatever a lost wake-up left undone. So an
enqueue that fails (the broker unreachable) is logged and never raised: it must not turn a committed change
into an error, nor make an error path delete what was committed.
"""

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_on_commit(task, *args, **kwargs):
    """Wake a worker for `task(*args, **kwargs)` once the current transaction commits; never raises.

    The work itself is already recorded in the database, so a broker that cannot be reached only delays
    it until the next sweep: the error is logged, and the committed change stands.
    """
    transaction.on_commit(lambda: enqueue_now(task, *args, **kwargs))


def enqueue_now(task, *args, **kwargs):
    """Wake a worker for `task(*args, **kwargs)` now (a sweep, or after a commit); False when the broker could not
    be reached, which is logged and left to the next sweep, never raised."""
    try:
        task.apply_async(args=args, kwargs=kwargs)
    except Exception:  # noqa: BLE001 — the broker away, or anything else: the sweep will do it
        logger.warning("Could not enqueue %s%r; the sweep will do it", task.name, args, exc_info=True)
        return False
    return True
