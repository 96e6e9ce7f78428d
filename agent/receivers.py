"""What the agent surface does when an account's grants change: wake the processes serving its MCP sessions.

A plan change or a revoked token (accounts.signals.account_grants_changed) and an OAuth token issued or
refreshed (django-oauth-toolkit's app_authorized) may change which tools a session's token is shown. The
wake-up travels as the event log's do (events.stream.wake: in this process, and through Redis to the others);
each process's follower then compares what every open session was shown with what its token may call now
(agent.mcp.push) and sends notifications/tools/list_changed where they differ.
"""

from django.db import transaction
from oauth2_provider.signals import app_authorized

from accounts.signals import account_grants_changed
from events import stream


def grants_changed(*, account, **kwargs):
    account_id = account.pk
    transaction.on_commit(lambda: stream.wake(account_id))  # the sessions must read the committed grant


def token_issued(*, token, **kwargs):
    account_id = getattr(getattr(token, "user", None), "account_id", None)
    if account_id is not None:
        transaction.on_commit(lambda: stream.wake(account_id))


def connect():
    """Connect the receivers (AgentConfig.ready)."""
    account_grants_changed.connect(grants_changed, dispatch_uid="agent.grants_changed")
    app_authorized.connect(token_issued, dispatch_uid="agent.token_issued")
