"""Settings → Developers → OAuth apps: the apps a person authorised through OAuth, listed and revoked.

The authorisation is real: an Application registered as dynamic client registration makes it, a DOT Grant
(authorization code with a PKCE S256 challenge) is created through the models, and DOT's own token endpoint
exchanges it for an access and a refresh token, which then call the REST API.
"""

import base64
import hashlib
import re
import secrets
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken

from accounts.models import RequestLog
from accounts.oauth_apps import oauth_app_list, oauth_app_revoke
from accounts.request_log import request_log_flush, request_log_write
from accounts.tokens import token_issue
from core.errors import NotFound

INDEX = "/settings/developers/"
MAILBOXES = "/api/v1/pub/mailboxes"
REDIRECT_URI = "https://claude.ai/api/mcp/auth_callback"


def _register(name="Claude", redirect_uri=REDIRECT_URI):
    return Application.objects.create(
        name=name, client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri, registration_source=Application.RegistrationSource.DCR)


def _grant(user, application, scope="mailbox:read email:read"):
    """A pending authorization code, as DOT's consent page saves it; returns (grant, PKCE verifier)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    grant = Grant.objects.create(
        user=user, application=application, code=secrets.token_urlsafe(32), expires=timezone.now() + timedelta(minutes=5),
        redirect_uri=application.redirect_uris.split()[0], scope=scope, code_challenge=challenge,
        code_challenge_method=Grant.CODE_CHALLENGE_S256)
    return grant, verifier


def _authorise(client, user, name="Claude", scope="mailbox:read email:read"):
    """Authorise an app for `user` and exchange the code at DOT's token endpoint: (application, token response)."""
    application = _register(name)
    grant, verifier = _grant(user, application, scope=scope)
    response = client.post("/oauth/token/", {
        "grant_type": "authorization_code", "code": grant.code, "redirect_uri": grant.redirect_uri,
        "client_id": application.client_id, "code_verifier": verifier})
    assert response.status_code == 200, response.content
    tokens = response.json()
    assert tokens["access_token"].startswith("qm_live_") and tokens["refresh_token"].startswith("qm_refresh_")
    return application, tokens


def _api(client, token):
    return client.get(MAILBOXES, HTTP_AUTHORIZATION=f"Bearer {token}")


def _oauth_section(page):
    return page.split('id="oauth-apps"', 1)[1].split('id="usage"', 1)[0]


def _tokens_section(page):
    return page.split('id="tokens"', 1)[1].split('id="oauth-apps"', 1)[0]


def test_an_authorised_app_is_listed_with_scopes_and_last_use(client, owner):
    user = owner.users.get()
    application, tokens = _authorise(client, user, name="Claude")
    assert _api(client, tokens["access_token"]).status_code == 200  # a logged call: its last use
    request_log_flush()
    token_issue(account=owner, user=user, client="Cursor", scopes="mailbox:read")  # a personal token: not an OAuth app

    client.force_login(user)
    page = client.get(INDEX).content.decode()
    apps = _oauth_section(page)
    assert "Claude" in apps and "returns to claude.ai" in apps
    assert "<code>email:read</code>" in apps and "<code>mailbox:read</code>" in apps
    assert "Cursor" not in apps and "No OAuth apps" not in apps
    assert "just now" in apps  # authorised and last used a moment ago
    assert reverse("developers:revoke_oauth_app", args=[application.pk]) in apps
    # The OAuth-issued token is managed with its app; the Tokens table lists personal tokens.
    assert "Cursor" in _tokens_section(page) and "Claude" not in _tokens_section(page)

    [app] = oauth_app_list(account=owner)
    assert app.id == application.pk and app.scopes == ["email:read", "mailbox:read"] and app.last_used is not None
    assert app.people == [user.email]


def test_revoking_an_app_ends_its_access_and_refresh_tokens_and_grants(client, owner):
    user = owner.users.get()
    application, tokens = _authorise(client, user)
    pending, _ = _grant(user, application)  # a second authorisation still in flight
    assert _api(client, tokens["access_token"]).status_code == 200
    other_app, other_tokens = _authorise(client, user, name="Other agent")

    client.force_login(user)
    url = reverse("developers:revoke_oauth_app", args=[application.pk])
    confirm = client.get(url)
    page = confirm.content.decode()
    assert confirm.status_code == 200 and "csrfmiddlewaretoken" in page and "Revoke access" in page
    assert "<code>mailbox:read</code>" in page

    revoked = client.post(url, follow=True)
    assert revoked.redirect_chain[-1] == (INDEX, 302)
    assert "Revoked Claude" in revoked.content.decode()
    assert _api(client, tokens["access_token"]).status_code == 401  # the very next call is refused
    refresh = client.post("/oauth/token/", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                            "client_id": application.client_id})
    assert refresh.status_code == 400  # and it cannot mint a new one
    assert not AccessToken.objects.filter(application=application).exists()
    assert not RefreshToken.objects.filter(application=application, revoked__isnull=True).exists()
    assert not Grant.objects.filter(pk=pending.pk).exists()
    assert "Claude" not in _oauth_section(client.get(INDEX).content.decode())
    # Other apps keep their access.
    assert _api(client, other_tokens["access_token"]).status_code == 200
    assert [app.id for app in oauth_app_list(account=owner)] == [other_app.pk]
    # Nothing left to revoke: the page and the POST are 404s now.
    assert client.get(url).status_code == 404 and client.post(url).status_code == 404


def test_revoke_needs_post_with_csrf(owner):
    from django.test import Client

    user = owner.users.get()
    strict = Client(enforce_csrf_checks=True)
    _, tokens = _authorise(strict, user)
    application = Application.objects.get(name="Claude")
    strict.force_login(user)
    assert strict.post(reverse("developers:revoke_oauth_app", args=[application.pk])).status_code == 403
    assert _api(strict, tokens["access_token"]).status_code == 200


def test_another_accounts_app_never_appears_and_cannot_be_revoked(client, owner, outsider):
    application, tokens = _authorise(client, outsider.users.get(), name="Outsider's agent")
    client.force_login(owner.users.get())
    assert "Outsider&#x27;s agent" not in client.get(INDEX).content.decode()
    url = reverse("developers:revoke_oauth_app", args=[application.pk])
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    assert client.post(reverse("developers:revoke_oauth_app", args=[999999])).status_code == 404
    with pytest.raises(NotFound):
        oauth_app_revoke(account=owner, application_id=application.pk)
    assert _api(client, tokens["access_token"]).status_code == 200  # still theirs, still working
    client.force_login(outsider.users.get())
    assert "Outsider&#x27;s agent" in _oauth_section(client.get(INDEX).content.decode())


def test_a_personal_token_client_is_not_an_oauth_app(client, owner):
    user = owner.users.get()
    plaintext, access_token = token_issue(account=owner, user=user, client="Claude Desktop", scopes="mailbox:read")
    client.force_login(user)
    url = reverse("developers:revoke_oauth_app", args=[access_token.application_id])
    assert client.get(url).status_code == 404 and client.post(url).status_code == 404
    assert _api(client, plaintext).status_code == 200


def test_a_pending_grant_alone_lists_the_app_and_expired_access_does_not(client, owner):
    user = owner.users.get()
    pending_app = _register("Half-way agent")
    _grant(user, pending_app, scope="email:send")
    expired_app = _register("Long-gone agent")
    grant, _ = _grant(user, expired_app)
    Grant.objects.filter(pk=grant.pk).update(expires=timezone.now() - timedelta(minutes=1))
    client.force_login(user)
    apps = _oauth_section(client.get(INDEX).content.decode())
    assert "Half-way agent" in apps and "<code>email:send</code>" in apps
    assert "Long-gone agent" not in apps


def test_an_app_whose_access_token_expired_stays_while_its_refresh_token_lives(client, owner):
    user = owner.users.get()
    application, tokens = _authorise(client, user)
    AccessToken.objects.filter(application=application).update(expires=timezone.now() - timedelta(minutes=1))
    [app] = oauth_app_list(account=owner)
    assert app.id == application.pk and app.access_tokens == 0 and app.scopes == ["email:read", "mailbox:read"]
    oauth_app_revoke(account=owner, application_id=application.pk)
    assert oauth_app_list(account=owner) == []


def test_last_used_is_relative_with_the_exact_time_in_the_title(client, owner):
    user = owner.users.get()
    application, _ = _authorise(client, user)
    access_token = AccessToken.objects.get(application=application)
    request_log_write(account=owner, token_id=access_token.pk, operation="qmailing_list_mailboxes", status=200,
                      duration_ms=5)
    when = timezone.now() - timedelta(hours=3, minutes=5)
    RequestLog.objects.update(created_at=when)
    client.force_login(user)
    apps = _oauth_section(client.get(INDEX).content.decode())
    match = re.search(r'<time datetime="[^"]+" data-when="ago" title="([^"]+)">3 hours ago</time>', apps)
    assert match and match.group(1) == f"{when:%a} {when.day} {when:%b %Y, %H:%M} UTC"


def test_empty_state_says_how_an_app_gets_here(client, owner):
    client.force_login(owner.users.get())
    apps = _oauth_section(client.get(INDEX).content.decode())
    assert "No OAuth apps have access to your account." in apps and "Claude.ai" in apps and "consent page" in apps
