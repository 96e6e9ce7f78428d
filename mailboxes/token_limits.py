"""Tokens limited to chosen mailboxes: which mailboxes a token reaches, and setting that when it is issued.

A token (personal, or issued through OAuth) reaches every mailbox of its account unless it carries a
TokenMailboxLimit. The agent surface reads the limit once per call (agent.gates.authenticate puts it on the
Actor as `mailbox_ids`), and every selector that reads mail for an agent takes it (`mailbox_ids`, None for
every mailbox): what lies outside the set answers as another account's data does, 404 `not_found`.

The limit is set where the token is made: accounts.tokens.token_issue (the Connect wizard, `issue_token`)
announces it with accounts.signals.token_issued, and the OAuth validator (agent.oauth_validator) keeps the
consent page's choice with the authorization code, then with the refresh-token family it starts
(OAuthMailboxLimit), and gives it to every token issued from that code, refreshes included.
"""

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q
from oauth2_provider.models import get_refresh_token_model

from core.errors import Invalid
from mailboxes.models import Mailbox, OAuthMailboxLimit, TokenMailboxLimit


def token_mailbox_ids(*, token) -> frozenset | None:
    """The ids of the mailboxes `token` may reach, or None when it reaches all of its account's (one query)."""
    rows = list(TokenMailboxLimit.objects.filter(token=token).values_list("mailboxes", flat=True))
    if not rows:
        return None
    return frozenset(mailbox_id for mailbox_id in rows if mailbox_id is not None)  # a limit with none left: None row


def account_mailboxes_chosen(*, account, mailbox_ids, field="mailboxes") -> list:
    """The account's mailboxes among `mailbox_ids` (at least one, every one the account's); Invalid otherwise."""
    ids = {str(mailbox_id) for mailbox_id in mailbox_ids}
    if not ids:
        raise Invalid("Choose at least one mailbox, or all of them.", field=field)
    try:
        mailboxes = list(Mailbox.objects.filter(account=account, pk__in=ids).select_related("domain"))
    except (ValidationError, ValueError, TypeError):
        mailboxes = []
    if len(mailboxes) != len(ids):
        raise Invalid("Some of the chosen mailboxes are not in your account.", field=field)
    return mailboxes


def token_limit_set(*, token, mailboxes):
    """Limit `token` to `mailboxes` (already checked to be its account's)."""
    limit, _ = TokenMailboxLimit.objects.get_or_create(token=token)
    limit.mailboxes.set(mailboxes)
    return limit


def oauth_limit_for_grant(*, grant, mailboxes):
    """Keep the consent page's mailboxes with an authorization code, for the tokens it will buy."""
    limit = OAuthMailboxLimit.objects.create(grant=grant)
    limit.mailboxes.set(mailboxes)
    return limit


def oauth_limit_on_exchange(*, grant, access_token, token_family):
    """An authorization code was exchanged for `access_token` (and a refresh-token family, or None): the token
    gets the code's limit, and the family keeps it for the refreshes. Nothing when the code had no limit."""
    limit = OAuthMailboxLimit.objects.filter(grant=grant).first() if grant is not None else None
    if limit is None:
        return
    token_limit_set(token=access_token, mailboxes=list(limit.mailboxes.all()))
    if token_family is None:
        limit.delete()  # no refresh token: nothing will ask again
    else:
        limit.token_family = token_family
        limit.save(update_fields=["token_family"])


def oauth_limit_on_refresh(*, access_token, token_family):
    """A refresh issued `access_token` in `token_family`: it gets the family's limit (none when the family has none)."""
    limit = OAuthMailboxLimit.objects.filter(token_family=token_family).first() if token_family else None
    if limit is not None:
        token_limit_set(token=access_token, mailboxes=list(limit.mailboxes.all()))


def oauth_limits_purge() -> int:
    """Forget the OAuth limits nothing can use any more: a code that expired unexchanged (its Grant deleted, no
    family) or a family with no refresh token left. Returns how many were deleted."""
    live_families = get_refresh_token_model().objects.filter(token_family=OuterRef("token_family"))
    _, deleted = (OAuthMailboxLimit.objects.filter(grant__isnull=True)
                  .filter(Q(token_family__isnull=True) | ~Exists(live_families)).delete())
    return deleted.get(OAuthMailboxLimit._meta.label, 0)  # not counting their mailbox links
