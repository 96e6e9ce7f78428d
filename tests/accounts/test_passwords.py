"""Password reset (by email, throttled, saying nothing about who has an account) and password change, on allauth."""

import re

from django.core import mail
from django.urls import reverse

from accounts.models import User

PASSWORD = "correct horse battery 9"
NEW_PASSWORD = "a brand new passphrase 7"


def _reset_link(message):
    match = re.search(r"https?://\S+(/accounts/password/reset/key/\S+/)", message.body)
    assert match, message.body
    return match.group(1)


def test_sign_in_page_links_to_the_reset(client, db):
    assert reverse("account_reset_password") in client.get(reverse("account_login")).content.decode()
    assert reverse("accounts:password_reset") == reverse("account_reset_password")  # the old name still reverses


def test_password_reset_by_email_end_to_end(client, owner, settings):
    settings.QMAILING_BASE_URL = "https://mail.example.test"
    form = client.get(reverse("account_reset_password"))
    assert form.status_code == 200 and "Password Reset" in form.content.decode()
    response = client.post(reverse("account_reset_password"), {"email": "Owner@Example.org"})
    assert response.status_code == 302 and response.url == reverse("account_reset_password_done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["owner@example.org"] and "Password Reset" in message.subject
    assert "https://mail.example.test/accounts/password/reset/key/" in message.body  # the configured URL, not Host

    link = _reset_link(message)
    confirm = client.get(link, follow=True)
    assert confirm.status_code == 200 and not confirm.context.get("token_fail")
    done = client.post(confirm.redirect_chain[-1][0], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302 and done.url == reverse("account_reset_password_from_key_done")
    assert User.objects.get(email="owner@example.org").check_password(NEW_PASSWORD)
    # The link works once.
    assert client.get(link, follow=True).context["token_fail"]


def test_reset_answers_the_same_for_unknown_addresses(client, owner):
    known = client.post(reverse("account_reset_password"), {"email": "owner@example.org"}, follow=True)
    unknown = client.post(reverse("account_reset_password"), {"email": "nobody@example.org"}, follow=True)
    assert known.status_code == unknown.status_code == 200
    assert known.redirect_chain == unknown.redirect_chain
    assert known.content.decode() == unknown.content.decode()
    assert [m.to for m in mail.outbox] == [["owner@example.org"]]


def test_reset_requests_are_throttled_per_address_and_ip(client, owner, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "reset_password": "4/15m/ip,2/15m/key"}
    for _ in range(2):
        assert client.post(reverse("account_reset_password"), {"email": "owner@example.org"}).status_code == 302
    refused = client.post(reverse("account_reset_password"), {"email": "owner@example.org"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many requests" in refused.content.decode()
    assert len(mail.outbox) == 2
    # An unknown address is refused the same way once over its budget: nothing to learn from the limit.
    for _ in range(2):
        client.post(reverse("account_reset_password"), {"email": "ghost@example.org"})
    ghost = client.post(reverse("account_reset_password"), {"email": "ghost@example.org"})
    assert ghost.status_code == 429 and "Too many requests" in ghost.content.decode()
    # 4 requests from this IP passed the per-address budget so far: a fifth address is refused by the per-IP one.
    per_ip = client.post(reverse("account_reset_password"), {"email": "other@example.org"})
    assert per_ip.status_code == 429


def test_password_change_needs_the_current_password_and_keeps_this_session(client, owner):
    user = owner.users.get()
    client.force_login(user)
    page = client.get(reverse("account_change_password"))
    assert page.status_code == 200 and "Change Password" in page.content.decode()
    wrong = client.post(reverse("account_change_password"),
                        {"oldpassword": "nope", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert wrong.status_code == 400 and "Please type your current password" in wrong.content.decode()
    ok = client.post(reverse("account_change_password"),
                     {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert ok.status_code == 302 and ok.url == reverse("account_change_password")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert client.get(reverse("dashboard")).status_code == 200  # still signed in
    assert client.get("/accounts/password/change/done/").url == reverse("security:index")  # the old address


def test_password_change_requires_sign_in(client, db):
    response = client.get(reverse("account_change_password"))
    assert response.status_code == 302 and reverse("account_login") in response.url


def test_header_links_to_password_change_and_security(client, owner):
    client.force_login(owner.users.get())
    page = client.get(reverse("dashboard")).content.decode()
    assert reverse("account_change_password") in page and reverse("security:index") in page
