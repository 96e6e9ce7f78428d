"""What the agent surface does when an account's grants change: wake the processes serving its MCP sessions.

A plan change or a revoked token (accounts.signals.account_grants_changed) and an OAuth token issued or
refreshed (django-oauth-toolkit's app_authorized) may change which tools a session's token is shown. The same
changes, and a token or a person saved or deleted however it happened, or an account closing, drop the
account's tokens from every process's cache (agent.token_cache). The
wake-up travels as the event log's do (events.stream.wake: in this process, and through Redis to the others);
each process's follower then compares what every open session was shown with what its token may call now
(agent.mcp.push) and sends notifications/tools/list_changed where they differ.
"""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from oauth2_provider.models import get_access_token_model
from oauth2_provider.signals import app_authorized

from accounts.signals import account_closing, account_grants_changed
from agent import token_cache
from events import stream


def grants_changed(*, account, **kwargs):
    # On commit (the sessions must read the committed grant): the account's cached tokens go in every process,
    # and the same wake-up has the MCP sessions list their tools again.
    token_cache.forget_account(account.pk)


def access_token_changed(*, instance, **kwargs):
    """A token saved or deleted however it happened (a refresh replacing it, an app's revocation, a cascade)."""
    user_id = instance.user_id
    if user_id is None:
        return
    account_id = get_user_model().objects.filter(pk=user_id).values_list("account_id", flat=True).first()
    if account_id is not None:
        token_cache.forget_account(account_id)


def user_changed(*, instance, **kwargs):
    """A person saved (deactivated, moved) or deleted: the tokens they issued act for them."""
    if instance.account_id is not None:
        token_cache.forget_account(instance.account_id)


def token_issued(*, token, **kwargs):
    account_id = getattr(getattr(token, "user", None), "account_id", None)
    if account_id is not None:
        transaction.on_commit(lambda: stream.wake(account_id))


def connect():
    """Connect the receivers (AgentConfig.ready)."""
    account_grants_changed.connect(grants_changed, dispatch_uid="agent.grants_changed")
    account_closing.connect(grants_changed, dispatch_uid="agent.account_closing")
    AccessToken, User = get_access_token_model(), get_user_model()
    post_save.connect(access_token_changed, sender=AccessToken, dispatch_uid="agent.access_token_saved")
    post_delete.connect(access_token_changed, sender=AccessToken, dispatch_uid="agent.access_token_deleted")
    post_save.connect(user_changed, sender=User, dispatch_uid="agent.user_saved")
    post_delete.connect(user_changed, sender=User, dispatch_uid="agent.user_deleted")
    app_authorized.connect(token_issued, dispatch_uid="agent.token_issued")
