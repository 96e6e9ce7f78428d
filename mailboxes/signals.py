"""What storing and sending mail tell the rest of mailboxes, so that ingest and send never import the tasks
(which import forwarding, which stores through ingest).

Each signal is sent with sender=Email inside the transaction that stores or sends the message, with send():
a receiver's error propagates and rolls the message back. A receiver that acts outside the database defers
itself with transaction.on_commit, so a message that rolls back triggers nothing.
"""

from django.dispatch import Signal

# A message was received (inbound, not imported): kwargs email. mailboxes.tasks records and wakes forwarding.
email_received = Signal()

# A stored message (any direction, imports too) has attachments whose text is still to be extracted: kwargs
# email. mailboxes.tasks wakes the extraction worker.
attachments_pending = Signal()

# A SENT copy has recipients outside QMailing: kwargs email, recipients (addresses), bounced (whether some
# local recipients refused it). mailboxes.tasks records the outside delivery and wakes a worker.
external_recipients = Signal()
