"""Fixtures shared by the mail tests, registered for the whole folder."""

from tests.mailboxes.inbound_helpers import mailbox, other_mailbox  # noqa: F401
from tests.mailboxes.outbound_helpers import eager_tasks, recipient_mailbox, sender, smtp_relay  # noqa: F401
