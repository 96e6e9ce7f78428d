"""Authorization codes are single-use (RFC 6749 §4.1.2, OAuth 2.1): DOT's OAuth2Validator, plus a memory.

DOT refuses a code it has already exchanged (its Grant is deleted) but forgets what the code bought. This
validator (OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"]) keeps a UsedAuthorizationCode row per spent code:

- an exchange records the code's checksum with the refresh-token family and the access token it issued, in
  the same transaction as the tokens; the checksum is unique, so of two concurrent exchanges of one code the
  second is rolled back and treated as a replay;
- a replayed code is refused (invalid_grant) and revokes everything issued from it: the first access and refresh
  tokens and every token rotated from them since (DOT's RefreshToken.revoke_family);
- a failed PKCE check spends the code: its Grant is deleted and recorded, so the right verifier sent afterwards
  is refused too (a wrong code_verifier gets invalid_grant, a missing one invalid_request).

Records are forgotten after USED_CODE_RETENTION (oauth_purge_used_codes, run by the daily OAuth purge task).

It also carries a limit to chosen mailboxes (mailboxes.token_limits) from the consent page to the tokens. The
consent view passes the person's choice to DOT as the credential `qmailing_mailbox_ids` (a list of mailbox
ids; absent or None for every mailbox), which oauthlib sets on its request. `save_authorization_code` keeps
it with the code (a mailbox that is not the person's account's refuses the authorization: access_denied);
`_save_bearer_token` gives it to the access token the code buys and, through the refresh-token family, to
every access token a refresh issues.
"""

import hashlib
import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model, get_grant_model, get_refresh_token_model, revoke_access_token,
)
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.grant_types.authorization_code import (
    code_challenge_method_plain, code_challenge_method_s256,
)

from agent.models import UsedAuthorizationCode
from core.errors import Invalid
from mailboxes.token_limits import (account_mailboxes_chosen, oauth_limit_for_grant, oauth_limit_on_exchange,
                                    oauth_limit_on_refresh)

logger = logging.getLogger(__name__)

# A code lives AUTHORIZATION_CODE_EXPIRE_SECONDS (a minute), so a replay comes within minutes of its use;
# a day of memory is ample, and the daily purge bounds the table.
USED_CODE_RETENTION = timedelta(days=1)
PKCE_CHECKS = {"S256": code_challenge_method_s256, "plain": code_challenge_method_plain}
# The credential the consent view passes to DOT's create_authorization_response: the chosen mailboxes' ids.
MAILBOX_IDS_CREDENTIAL = "qmailing_mailbox_ids"


def _checksum(value):
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class _CodeAlreadyUsed(Exception):
    """Raised inside DOT's token transaction so that the tokens just minted are rolled back."""


def _revoke_issued_from(code):
    """If `code` was spent, revoke every token issued from it, rotations included."""
    record = UsedAuthorizationCode.objects.filter(code_checksum=_checksum(code)).first()
    if record is None:
        return
    logger.warning("Authorization code presented again (used-code #%s): the tokens issued from it are revoked",
                   record.pk)
    if record.token_family:
        get_refresh_token_model().revoke_family(record.token_family)
    if record.access_token_checksum:
        access_token = get_access_token_model().objects.filter(token_checksum=record.access_token_checksum).first()
        if access_token is not None:
            revoke_access_token(access_token)


def _spend(code, client):
    """A failed verification spends the code. Spent twice (a concurrent exchange won), its tokens are revoked."""
    get_grant_model().objects.filter(code=code, application=client).delete()
    _, created = UsedAuthorizationCode.objects.get_or_create(code_checksum=_checksum(code))
    if not created:
        _revoke_issued_from(code)


def _verifier_refused(grant, verifier):
    """Whether `grant` has a PKCE challenge that `verifier` does not answer."""
    if not grant.code_challenge:
        return False  # oauthlib refuses a code without a challenge (PKCE_REQUIRED)
    check = PKCE_CHECKS.get(grant.code_challenge_method)
    if check is None:
        return False  # oauthlib refuses an unknown method
    return verifier is None or not check(verifier, grant.code_challenge)


class SingleUseCodeValidator(OAuth2Validator):
    """DOT's validator; the authorization-code grant remembers spent codes (see the module docstring)."""

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        valid = super().validate_code(client_id, code, client, request, *args, **kwargs)
        # Read once: a concurrent exchange may delete the Grant before oauthlib's later lookups (a 500 in DOT).
        grant = get_grant_model().objects.filter(code=code, application=client).first() if valid else None
        if grant is None:
            _revoke_issued_from(code)  # unknown and expired codes have no record: nothing to revoke
            return False
        # oauthlib checks the verifier right after this, but offers no hook on failure: check it here first.
        if _verifier_refused(grant, request.code_verifier):
            _spend(code, client)
            if request.code_verifier is None:
                raise errors.MissingCodeVerifierError(request=request)
            return False
        request.authorization_grant = grant
        return True

    def get_code_challenge(self, code, request):
        return request.authorization_grant.code_challenge or None

    def get_code_challenge_method(self, code, request):
        return request.authorization_grant.code_challenge_method or None

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, request, *args, **kwargs):
        return request.authorization_grant.redirect_uri_allowed(redirect_uri)

    def save_authorization_code(self, client_id, code, request, *args, **kwargs):
        """DOT's Grant, and with it the mailboxes chosen on the consent page (`request.qmailing_mailbox_ids`)."""
        # Only the credential the consent view set on the request: oauthlib's getattr would also answer with a
        # query parameter of the authorize URL, which the app writes.
        mailbox_ids = vars(request).get(MAILBOX_IDS_CREDENTIAL)
        mailboxes = None
        if mailbox_ids is not None:
            account = getattr(request.user, "account", None)
            try:
                if account is None:
                    raise Invalid("No account.")
                mailboxes = account_mailboxes_chosen(account=account, mailbox_ids=mailbox_ids)
            except Invalid:
                raise errors.AccessDeniedError(description="The chosen mailboxes are not all in your account.",
                                               request=request) from None
        with transaction.atomic():  # a code is never issued without the limit it was chosen with
            grant = self._create_authorization_code(request, code)
            if mailboxes is not None:
                oauth_limit_for_grant(grant=grant, mailboxes=mailboxes)

    def save_bearer_token(self, token, request, *args, **kwargs):
        try:
            return super().save_bearer_token(token, request, *args, **kwargs)
        except _CodeAlreadyUsed:
            # Our tokens are rolled back by now; the ones the other exchange committed are revoked.
            _revoke_issued_from(request.code)
            raise errors.InvalidGrantError(request=request) from None

    def _save_bearer_token(self, token, request, *args, **kwargs):
        super()._save_bearer_token(token, request, *args, **kwargs)
        if request.grant_type == "authorization_code":
            self._record_exchange(token, request)
        self._carry_mailbox_limit(token, request)

    def _carry_mailbox_limit(self, token, request):
        """The access token just saved gets the mailbox limit of its code (an exchange) or family (a refresh)."""
        access_token = (get_access_token_model().objects.filter(token_checksum=_checksum(token["access_token"]))
                        .first())
        if access_token is None:
            return
        family = (get_refresh_token_model().objects.filter(access_token=access_token)
                  .values_list("token_family", flat=True).first())
        if request.grant_type == "authorization_code":
            oauth_limit_on_exchange(grant=getattr(request, "authorization_grant", None), access_token=access_token,
                                    token_family=family)
        elif request.grant_type == "refresh_token":
            oauth_limit_on_refresh(access_token=access_token, token_family=family)

    def _record_exchange(self, token, request):
        access_token_checksum = _checksum(token["access_token"])
        token_family = (get_refresh_token_model().objects.filter(access_token__token_checksum=access_token_checksum)
                        .values_list("token_family", flat=True).first())
        try:
            with transaction.atomic():  # a savepoint: PostgreSQL aborts the whole transaction on a failed insert
                UsedAuthorizationCode.objects.create(code_checksum=_checksum(request.code), token_family=token_family,
                                                     access_token_checksum=access_token_checksum)
        except IntegrityError:
            raise _CodeAlreadyUsed from None


def oauth_purge_used_codes(*, now=None):
    """Forget used authorization codes older than USED_CODE_RETENTION. Returns how many were deleted."""
    cutoff = (now or timezone.now()) - USED_CODE_RETENTION
    deleted, _ = UsedAuthorizationCode.objects.filter(used_at__lt=cutoff).delete()
    return deleted
