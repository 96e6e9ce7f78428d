"""The authorization server's policy pieces without a running server: audience, user-less tokens, cleanup."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken, set_token_value

from accounts.tokens import access_token_generator, refresh_token_generator
from agent import oauth
from agent.operations import registry
from tests.api_helpers import call, token_for


@pytest.fixture
def list_mailboxes():
    return registry()["qmailing_list_mailboxes"]


def _oauth_token(*, user, resource=(), application=None):
    application = application or Application.objects.create(
        name="Agent", client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://claude.ai/api/mcp/auth_callback", registration_source=Application.RegistrationSource.DCR)
    plaintext = access_token_generator()
    token = AccessToken(user=user, application=application, scope="mailbox:read", resource=list(resource),
                        expires=timezone.now() + timedelta(hours=1))
    set_token_value(token, plaintext)
    token.save()
    return plaintext, token


def test_a_token_with_no_user_is_refused(client, owner, list_mailboxes):
    plaintext, _ = _oauth_token(user=None)
    response = call(client, list_mailboxes, token=plaintext)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert "resource_metadata=" in response["WWW-Authenticate"]


@pytest.mark.parametrize("resource, status", [
    ((), 200),  # unrestricted
    (("http://testserver/api/v1/pub",), 200),
    (("http://testserver/mcp",), 200),
    (("http://testserver",), 200),
    (("https://elsewhere.example/api/v1/pub",), 401),
    (("http://testserver.evil.example/mcp",), 401),
    (("http://testserver/other",), 401),
])
def test_the_api_checks_the_token_audience(client, owner, list_mailboxes, resource, status):
    plaintext, _ = _oauth_token(user=owner.users.first(), resource=resource)
    assert call(client, list_mailboxes, token=plaintext).status_code == status


def test_personal_tokens_stay_unrestricted(client, owner, list_mailboxes):
    assert call(client, list_mailboxes, token=token_for(owner)).status_code == 200


@pytest.mark.parametrize("uri, allowed", [
    ("https://claude.ai/api/mcp/auth_callback", True), ("https://claude.com/api/mcp/auth_callback", True),
    ("http://127.0.0.1:1234/cb", True), ("http://localhost/cb", True), ("http://[::1]:9/cb", True),
    ("http://127.0.0.2/cb", True), ("http://example.com/cb", False), ("http://localhost.evil.example/cb", False),
    ("https:///nohost", False), ("cursor://callback", False), ("https://a.example/cb#x", False),
    ("http://127.0.0.1:99999/cb", False), (None, False),
])
def test_redirect_uri_policy(uri, allowed):
    assert oauth.redirect_uri_allowed(uri) is allowed


def test_stale_registrations_are_purged(owner):
    old = timezone.now() - timedelta(days=settings.QMAILING_DCR_STALE_DAYS + 1)

    def dcr_app(name):
        app = Application.objects.create(
            name=name, client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris="https://claude.ai/api/mcp/auth_callback", registration_source=Application.RegistrationSource.DCR)
        Application.objects.filter(pk=app.pk).update(created=old)
        # Its registration access token (DOT's DCR scope) does not count as use.
        registration = AccessToken(application=app, user=None, scope="oauth2_provider:registration",
                                   expires=timezone.now() + timedelta(days=1))
        set_token_value(registration, f"registration-{app.pk}")
        registration.save()
        return app

    unused = dcr_app("never used")
    used = dcr_app("used")
    _oauth_token(user=owner.users.first(), application=used)
    refreshed_only = dcr_app("refreshed")
    refresh = RefreshToken(application=refreshed_only, user=owner.users.first())
    set_token_value(refresh, refresh_token_generator())
    refresh.save()
    fresh = Application.objects.create(
        name="fresh", client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://claude.ai/api/mcp/auth_callback", registration_source=Application.RegistrationSource.DCR)
    manual = Application.objects.create(name="Claude Desktop", client_type=Application.CLIENT_CONFIDENTIAL,
                                        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE, redirect_uris="")
    Application.objects.filter(pk=manual.pk).update(created=old)

    from agent.tasks import oauth_purge_stale_registrations_task

    assert oauth_purge_stale_registrations_task.apply().get() == 1
    remaining = set(Application.objects.values_list("pk", flat=True))
    assert unused.pk not in remaining
    assert {used.pk, refreshed_only.pk, fresh.pk, manual.pk} <= remaining
    assert not AccessToken.objects.filter(application_id=unused.pk).exists()


def test_the_purge_runs_on_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["oauth-purge-stale-registrations"]
    assert entry["task"] == "agent.tasks.oauth_purge_stale_registrations_task"
