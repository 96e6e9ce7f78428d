"""Accounts on django-allauth, through the real views: sign-up with email verification, sign-in and its rate
limit, password reset and change, TOTP, the session list, deleting the account, and the old addresses."""

import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import Account, User
from mailboxes.models import Attachment, Email, Mailbox
from mailboxes.selectors import mailbox_list
from tests.mailboxes.outbound_helpers import eager_tasks  # noqa: F401 (a fixture)

PASSWORD = "correct horse battery 9"
NEW_PASSWORD = "a brand new passphrase 7"


def sign_in(client, email, password=PASSWORD, **extra):
    return client.post(reverse("account_login"), {"login": email, "password": password}, **extra)


def link_in(message, path_prefix):
    match = re.search(r"https?://[^/\s]+(" + re.escape(path_prefix) + r"\S+)", message.body)
    assert match, message.body
    return match.group(1)


def totp_code(secret):
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


class _Outline(HTMLParser):
    def __init__(self):
        super().__init__()
        self.h1, self.title, self.inputs, self.labels, self.in_label = 0, 0, [], set(), False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.h1 += tag == "h1"
        self.title += tag == "title"
        if tag in ("input", "select", "textarea") and attrs.get("type") not in ("hidden", "submit"):
            self.inputs.append(attrs.get("id"))
            if self.in_label:  # <label><input> text</label>
                self.labels.add(attrs.get("id"))
        if tag == "label":
            self.in_label = True
            if attrs.get("for"):
                self.labels.add(attrs["for"])

    def handle_endtag(self, tag):
        if tag == "label":
            self.in_label = False


def assert_page_outline(response):
    outline = _Outline()
    outline.feed(response.content.decode())
    assert outline.h1 == 1 and outline.title == 1, response.request["PATH_INFO"]
    unlabelled = [i for i in outline.inputs if i not in outline.labels]
    assert not unlabelled, (response.request["PATH_INFO"], unlabelled)


def test_sign_up_verify_by_link_then_signed_in_with_an_account_and_a_mailbox(client, db, settings):
    settings.QMAILING_BASE_URL = "https://mail.example.test"
    page = client.get(reverse("account_signup"))
    assert page.status_code == 200 and "Create your account" in page.content.decode()
    assert_page_outline(page)
    response = client.post(reverse("account_signup"),
                           {"email": "New.Person@Example.com", "password1": "a long enough passphrase", "full_name": "New"})
    assert response.status_code == 302 and response.url == reverse("account_email_verification_sent")
    user = User.objects.get(email="new.person@example.com")
    # Nothing is held for an address nobody confirmed: no account, no mailbox on the shared domain yet.
    assert user.account is None and user.full_name == "New" and not Account.objects.exists()

    [message] = mail.outbox
    assert message.to == ["new.person@example.com"] and message.from_email.endswith(f"@{settings.QMAILING_SHARED_DOMAIN}>")
    assert "https://mail.example.test/accounts/confirm-email/" in message.body  # the configured URL, not Host
    link = link_in(message, "/accounts/confirm-email/")
    confirm = client.get(link)
    assert confirm.status_code == 200 and "new.person@example.com" in confirm.content.decode()
    done = client.post(link)
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.account.plan.code == "FREE"
    assert [m.address for m in mailbox_list(account=user.account)] == [f"new.person@{settings.QMAILING_SHARED_DOMAIN}"]
    dashboard = client.get(reverse("dashboard"))
    assert dashboard.status_code == 200
    assert f"new.person@{settings.QMAILING_SHARED_DOMAIN}" in dashboard.content.decode() and "Welcome" in dashboard.content.decode()


def test_sign_up_errors_keep_the_input_and_create_nothing(client, db):
    response = client.post(reverse("account_signup"), {"email": "x@example.com", "password1": "123", "full_name": "Ex"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "too short" in page and 'value="x@example.com"' in page and 'value="Ex"' in page
    assert not User.objects.filter(email="x@example.com").exists() and not Account.objects.exists()


def test_unverified_user_cannot_reach_the_dashboard(client, db):
    client.post(reverse("account_signup"), {"email": "late@example.com", "password1": "a long enough passphrase"})
    assert client.get(reverse("dashboard")).status_code == 302
    response = sign_in(client, "late@example.com", "a long enough passphrase")
    assert response.status_code == 302 and response.url == reverse("account_email_verification_sent")
    dashboard = client.get(reverse("dashboard"))
    assert dashboard.status_code == 302 and dashboard.url.startswith(reverse("account_login"))


def test_sign_in_and_out(client, owner):
    page = client.get(reverse("account_login"))
    assert_page_outline(page)
    assert reverse("account_reset_password") in page.content.decode()
    bad = sign_in(client, "owner@example.org", "wrong")
    assert bad.status_code == 400 and 'value="owner@example.org"' in bad.content.decode()
    good = sign_in(client, "OWNER@example.org")
    assert good.status_code == 302 and good.url == reverse("dashboard")
    assert client.get(reverse("dashboard")).status_code == 200
    client.post(reverse("account_logout"))
    assert client.get(reverse("dashboard")).status_code == 302


def test_sign_in_rate_limit_answers_429_after_repeated_failures(client, owner):
    for _ in range(10):
        assert sign_in(client, "owner@example.org", "wrong").status_code == 400
    refused = sign_in(client, "owner@example.org")  # even the right password
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 15 * 60
    assert "Too many sign-in attempts. Try again in 15 minutes." in refused.content.decode()
    assert client.get(reverse("dashboard")).status_code == 302
    # Another person, from another address, is unaffected.
    assert sign_in(client, "outsider@example.net", REMOTE_ADDR="192.0.2.44").status_code == 400  # no such user yet
    assert sign_in(Client(), "owner@example.org", REMOTE_ADDR="192.0.2.45").status_code == 429  # the lock is on the email


def test_password_reset_by_email_then_sign_in_with_the_new_password(client, owner, settings):
    settings.QMAILING_BASE_URL = "https://mail.example.test"
    form = client.get(reverse("account_reset_password"))
    assert form.status_code == 200
    assert_page_outline(form)
    response = client.post(reverse("account_reset_password"), {"email": "Owner@Example.org"})
    assert response.status_code == 302 and response.url == reverse("account_reset_password_done")
    [message] = mail.outbox
    assert message.to == ["owner@example.org"]
    assert "https://mail.example.test/accounts/password/reset/key/" in message.body
    link = link_in(message, "/accounts/password/reset/key/")
    page = client.get(link, follow=True)
    set_url = page.redirect_chain[-1][0] if page.redirect_chain else link
    mismatch = client.post(set_url, {"password1": NEW_PASSWORD, "password2": "something else 12"})
    assert mismatch.status_code == 400
    done = client.post(set_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302 and done.url == reverse("account_reset_password_from_key_done")
    assert sign_in(client, "owner@example.org").status_code == 400  # the old one no longer works
    assert sign_in(client, "owner@example.org", NEW_PASSWORD).status_code == 302
    assert client.get(reverse("dashboard")).status_code == 200
    assert client.get(link, follow=True).context["token_fail"]  # the link works once


def test_reset_for_an_unknown_address_sends_nothing_and_looks_the_same(client, owner):
    known = client.post(reverse("account_reset_password"), {"email": "owner@example.org"}, follow=True)
    unknown = client.post(reverse("account_reset_password"), {"email": "nobody@example.org"}, follow=True)
    assert known.redirect_chain == unknown.redirect_chain
    assert [m.to for m in mail.outbox] == [["owner@example.org"]]


def test_password_change(client, owner):
    sign_in(client, "owner@example.org")
    page = client.get(reverse("account_change_password"))
    assert page.status_code == 200
    assert_page_outline(page)
    wrong = client.post(reverse("account_change_password"),
                        {"oldpassword": "nope", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert wrong.status_code == 400
    ok = client.post(reverse("account_change_password"),
                     {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert ok.status_code == 302
    assert User.objects.get(email="owner@example.org").check_password(NEW_PASSWORD)
    assert client.get(reverse("dashboard")).status_code == 200  # still signed in


def test_totp_activation_then_sign_in_asks_for_the_code(client, owner):
    sign_in(client, "owner@example.org")
    reauthenticate = client.get(reverse("mfa_activate_totp"))  # a sensitive change asks for the password again
    assert reauthenticate.status_code == 302 and reauthenticate.url.startswith(reverse("account_reauthenticate"))
    assert client.post(reauthenticate.url, {"password": PASSWORD}).status_code == 302
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200 and "data:image/svg+xml" in page.content.decode()  # the QR code
    assert_page_outline(page)
    secret = page.context["form"].secret
    assert client.post(reverse("mfa_activate_totp"), {"code": "000000" if totp_code(secret) != "000000" else "111111"}
                       ).status_code == 400
    activated = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert activated.status_code == 302
    [authenticator] = owner.users.get().authenticator_set.filter(type="totp")
    assert secret not in str(authenticator.data)  # stored encrypted (accounts.adapter.MFAAdapter)
    client.post(reverse("account_logout"))

    response = sign_in(client, "owner@example.org")
    assert response.status_code == 302 and response.url == reverse("mfa_authenticate")
    assert client.get(reverse("dashboard")).status_code == 302  # not in yet
    assert client.post(reverse("mfa_authenticate"), {"code": "12345"}).status_code == 400
    assert client.get(reverse("dashboard")).status_code == 302
    entered = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert entered.status_code == 302
    assert client.get(reverse("dashboard")).status_code == 200


def test_session_list_and_sign_out_other_sessions(owner):
    laptop, phone = Client(HTTP_USER_AGENT="Laptop browser"), Client(HTTP_USER_AGENT="Phone browser")
    assert sign_in(laptop, "owner@example.org").status_code == 302
    assert sign_in(phone, "owner@example.org", REMOTE_ADDR="192.0.2.8").status_code == 302
    page = laptop.get(reverse("usersessions_list"))
    assert page.status_code == 200 and len(page.context["sessions"]) == 2
    assert "Laptop browser" in page.content.decode() and "Phone browser" in page.content.decode()
    assert_page_outline(page)
    assert laptop.post(reverse("usersessions_list")).status_code == 302
    assert phone.get(reverse("dashboard")).status_code == 302  # signed out
    assert laptop.get(reverse("dashboard")).status_code == 200
    assert len(laptop.get(reverse("usersessions_list")).context["sessions"]) == 1


def test_security_page_links_every_setting(client, owner):
    client.force_login(owner.users.get())
    page = client.get(reverse("security:index"))
    assert page.status_code == 200
    assert_page_outline(page)
    html = page.content.decode()
    for name in ("account_change_password", "account_email", "mfa_activate_totp", "mfa_list_webauthn",
                 "usersessions_list", "security:delete"):
        assert reverse(name) in html, name
    assert reverse("security:index") in client.get(reverse("dashboard")).content.decode()  # the header links here


def test_account_deletion_removes_its_rows_and_files(client, owner, outsider, verified_domain, settings,
                                                     django_capture_on_commit_callbacks, eager_tasks):
    from tests.mailboxes.outbound_helpers import receive

    mailbox = owner.mailboxes.first()
    email = receive(mailbox, subject="Keep?", attachments=[("a.txt", "text/plain", b"secret bytes")])
    files = [Path(settings.MEDIA_ROOT) / email.raw.name] + [Path(settings.MEDIA_ROOT) / a.file.name for a in email.attachments.all()]
    assert len(files) == 2 and all(f.exists() for f in files)
    outsider_mail = receive(outsider.mailboxes.first(), subject="Not mine")
    sign_in(client, "owner@example.org")

    page = client.get(reverse("security:delete"))
    assert page.status_code == 200
    assert_page_outline(page)
    wrong = client.post(reverse("security:delete"), {"email": "owner@example.org", "password": "not it"})
    assert wrong.status_code == 400 and "not your password" in wrong.content.decode()
    wrong_email = client.post(reverse("security:delete"), {"email": "outsider@example.net", "password": PASSWORD})
    assert wrong_email.status_code == 400 and 'value="outsider@example.net"' in wrong_email.content.decode()
    assert Account.objects.filter(pk=owner.pk).exists()

    # A file a cascade could leave behind (say, mail that arrived mid-deletion) goes with the account's folders.
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    stray = Path(settings.MEDIA_ROOT) / default_storage.save(f"raw/{owner.pk}/stray.eml", ContentFile(b"x"))
    files.append(stray)
    with django_capture_on_commit_callbacks(execute=True):  # the task runs (in-process here) after the request commits
        done = client.post(reverse("security:delete"), {"email": "Owner@example.org", "password": PASSWORD})
    assert done.status_code == 302 and done.url == reverse("account_login")
    assert not Account.objects.filter(pk=owner.pk).exists()
    assert not User.objects.filter(email="owner@example.org").exists()
    assert not Mailbox.objects.filter(account_id=owner.pk).exists() and not Email.objects.filter(account_id=owner.pk).exists()
    assert not Attachment.objects.filter(email_id=email.pk).exists()
    assert not verified_domain.__class__.objects.filter(pk=verified_domain.pk).exists()
    assert not any(f.exists() for f in files)
    assert client.get(reverse("dashboard")).status_code == 302  # signed out
    assert not Path(settings.MEDIA_ROOT, "raw", str(owner.pk)).exists() or not any(Path(settings.MEDIA_ROOT, "raw", str(owner.pk)).iterdir())
    # The other account is untouched.
    assert Email.objects.filter(pk=outsider_mail.pk).exists() and (Path(settings.MEDIA_ROOT) / outsider_mail.raw.name).exists()


def test_old_addresses_lead_to_the_new_pages(client, owner):
    signin = client.get("/accounts/signin/?next=/settings/plan")
    assert signin.status_code == 301 and signin.url == reverse("account_login") + "?next=/settings/plan"
    assert "Sign in" in client.get(signin.url).content.decode()
    assert client.get("/accounts/signup/").status_code == 200
    assert reverse("accounts:signup") == reverse("account_signup")
    assert reverse("accounts:password_change") == reverse("account_change_password")
    assert client.get("/accounts/password/reset/MQ/abc-123/").url == reverse("account_reset_password")
    assert sign_in(client, "owner@example.org").status_code == 302
    client.post("/accounts/signout/")
    assert client.get(reverse("dashboard")).status_code == 302


@pytest.mark.parametrize("name", ["account_login", "account_signup", "account_reset_password"])
def test_entrance_pages_have_one_h1_a_title_and_labels(client, db, name):
    assert_page_outline(client.get(reverse(name)))


def test_signed_in_allauth_pages_have_one_h1_a_title_and_labels(client, owner):
    sign_in(client, "owner@example.org")
    reauthenticate = client.get(reverse("mfa_add_webauthn"))
    assert_page_outline(client.get(reauthenticate.url))
    client.post(reauthenticate.url, {"password": PASSWORD})
    for name in ("account_email", "account_change_password", "mfa_index", "mfa_list_webauthn", "mfa_add_webauthn",
                 "mfa_activate_totp", "usersessions_list", "security:index", "security:delete"):
        response = client.get(reverse(name))
        assert response.status_code == 200, name
        assert_page_outline(response)


def test_a_closed_account_refuses_its_tokens_and_its_mail_before_it_is_deleted(client, owner):
    """account_close, the quick half done in the request: the slow half (the task) may run much later."""
    from accounts.services import account_close
    from agent.operations import registry
    from tests.api_helpers import call, token_for

    token = token_for(owner)
    operation = registry()["qmailing_list_mailboxes"]
    assert call(client, operation, token=token).status_code == 200
    account_close(account=owner)
    assert call(client, operation, token=token).status_code == 401
    assert all(mailbox.status == Mailbox.Status.SUSPENDED for mailbox in owner.mailboxes.all())  # new mail refused
    assert not User.objects.get(email="owner@example.org").is_active
