"""Closing an account records its deletion; if the task that deletes it is lost (the broker away, a worker
killed), the beat sweep enqueues it again, so no closed account outlives its deletion."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import Account
from accounts.services import account_close, accounts_deletion_due
from accounts.tasks import accounts_closed_sweep_task
from tests.mailboxes.outbound_helpers import eager_tasks  # noqa: F401 — fixture


def test_a_closed_account_whose_deletion_task_was_lost_is_deleted_by_the_sweep(owner, eager_tasks):  # noqa: F811
    account_close(account=owner)  # in a test transaction: no commit, so no task ran, as when it is lost
    owner.refresh_from_db()
    assert owner.deletion_due_at is not None
    assert accounts_deletion_due() == []  # too recent to be called lost
    Account.objects.filter(pk=owner.pk).update(
        deletion_due_at=timezone.now() - timedelta(seconds=settings.QMAILING_STUCK_AFTER_SECONDS + 1))
    assert accounts_closed_sweep_task() == 1
    assert not Account.objects.filter(pk=owner.pk).exists()
    assert accounts_closed_sweep_task() == 0
