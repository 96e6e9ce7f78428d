"""Password reset (by email, throttled, saying nothing about who has an account) and password change."""

import re

from django.core import mail
from django.urls import reverse

from accounts.models import User

PASSWORD = "correct horse battery 9"
NEW_PASSWORD = "a brand new passphrase 7"


def _reset_link(message):
    match = re.search(r"https?://\S+(/accounts/password/reset/\S+/\S+/)", message.body)
    assert match, message.body
    return match.group(1)


def test_sign_in_page_links_to_the_reset(client, db):
    assert reverse("accounts:password_reset") in client.get(reverse("accounts:signin")).content.decode()


def test_password_reset_by_email_end_to_end(client, owner, settings):
    settings.QMAILING_BASE_URL = "https://mail.example.test"
    form = client.get(reverse("accounts:password_reset"))
    assert form.status_code == 200 and "Reset your password" in form.content.decode()
    response = client.post(reverse("accounts:password_reset"), {"email": "Owner@Example.org"})
    assert response.status_code == 302 and response.url == reverse("accounts:password_reset_done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["owner@example.org"] and "Reset your QMailing password" in message.subject
    assert "https://mail.example.test/accounts/password/reset/" in message.body  # the configured URL, not Host

    link = _reset_link(message)
    confirm = client.get(link, follow=True)
    assert "Choose a new password" in confirm.content.decode()
    done = client.post(confirm.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done.url == reverse("accounts:password_reset_complete")
    assert User.objects.get(email="owner@example.org").check_password(NEW_PASSWORD)
    # The link works once.
    assert "does not work any more" in client.get(link, follow=True).content.decode()


def test_reset_answers_the_same_for_unknown_addresses(client, owner):
    known = client.post(reverse("accounts:password_reset"), {"email": "owner@example.org"}, follow=True)
    unknown = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.org"}, follow=True)
    assert known.status_code == unknown.status_code == 200
    assert known.redirect_chain == unknown.redirect_chain
    assert known.content.decode() == unknown.content.decode()
    assert [m.to for m in mail.outbox] == [["owner@example.org"]]


def test_reset_requests_are_throttled_per_address_and_ip(client, owner, settings):
    settings.QMAILING_PASSWORD_RESETS_PER_EMAIL = 2
    for _ in range(2):
        assert client.post(reverse("accounts:password_reset"), {"email": "owner@example.org"}).status_code == 302
    refused = client.post(reverse("accounts:password_reset"), {"email": "owner@example.org"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many password reset requests" in refused.content.decode()
    assert len(mail.outbox) == 2
    # An unknown address is refused in the same words once over its budget: nothing to learn from the limit.
    for _ in range(2):
        client.post(reverse("accounts:password_reset"), {"email": "ghost@example.org"})
    ghost = client.post(reverse("accounts:password_reset"), {"email": "ghost@example.org"})
    assert ghost.status_code == 429 and "Too many password reset requests" in ghost.content.decode()

    settings.QMAILING_PASSWORD_RESETS_PER_EMAIL = 100
    settings.QMAILING_PASSWORD_RESETS_PER_IP = 4  # 4 requests from this IP passed the per-address budget so far
    per_ip = client.post(reverse("accounts:password_reset"), {"email": "other@example.org"})
    assert per_ip.status_code == 429


def test_password_change_needs_the_current_password_and_keeps_this_session(client, owner):
    user = owner.users.get()
    client.force_login(user)
    page = client.get(reverse("accounts:password_change"))
    assert page.status_code == 200 and "Change your password" in page.content.decode()
    wrong = client.post(reverse("accounts:password_change"),
                        {"old_password": "nope", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert wrong.status_code == 200 and "incorrectly" in wrong.content.decode()
    ok = client.post(reverse("accounts:password_change"),
                     {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert ok.status_code == 302 and ok.url == reverse("accounts:password_change_done")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert client.get(reverse("dashboard")).status_code == 200  # still signed in


def test_password_change_requires_sign_in(client, db):
    response = client.get(reverse("accounts:password_change"))
    assert response.status_code == 302 and reverse("accounts:signin") in response.url


def test_header_links_to_password_change(client, owner):
    client.force_login(owner.users.get())
    assert reverse("accounts:password_change") in client.get(reverse("dashboard")).content.decode()
