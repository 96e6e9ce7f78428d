"""A user without an account (made with `createsuperuser`) gets one, with a mailbox, on the first page they open."""

import re

from django.core import mail
from django.core.management import call_command
from django.urls import reverse

from accounts.models import User
from accounts.services import account_provision_for_user
from mailboxes.selectors import mailbox_list


def test_createsuperuser_user_gets_a_free_account_and_a_mailbox_on_first_sign_in(client, db, settings):
    call_command("createsuperuser", email="Dana@Example.com", interactive=False, verbosity=0)
    user = User.objects.get(email="dana@example.com")
    user.set_password("correct horse battery 9")
    user.save()
    assert user.account is None

    # Through allauth's sign-in: the address was never verified, so the first sign-in mails a link, which signs in.
    response = client.post(reverse("account_login"), {"login": "dana@example.com", "password": "correct horse battery 9"})
    assert response.status_code == 302 and response.url == reverse("account_email_verification_sent")
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+)", mail.outbox[0].body).group(1)
    assert client.post(link).status_code == 302
    dashboard = client.get(reverse("dashboard"))
    assert dashboard.status_code == 200
    user.refresh_from_db()
    assert user.account is not None and user.account.plan.code == "FREE"
    mailboxes = list(mailbox_list(account=user.account))
    assert [mailbox.address for mailbox in mailboxes] == [f"dana@{settings.QMAILING_SHARED_DOMAIN}"]
    page = dashboard.content.decode()
    assert f"dana@{settings.QMAILING_SHARED_DOMAIN}" in page and "Welcome" in page
    # Every other page works too, and nothing is provisioned twice.
    for name in ("plan", "developers:index", "domains:add", "mailboxes:create"):
        assert client.get(reverse(name)).status_code == 200
    assert len(list(mailbox_list(account=user.account))) == 1


def test_provisioning_is_idempotent(db):
    user = User.objects.create_superuser(email="ops@example.com", password="x")
    first = account_provision_for_user(user=user)
    again = account_provision_for_user(user=User.objects.get(pk=user.pk))
    assert first.pk == again.pk
    assert len(list(mailbox_list(account=first))) == 1


def test_role_name_users_get_a_safe_local_part(client, db, settings):
    user = User.objects.create_superuser(email="admin@example.com", password="x")
    client.force_login(user)
    assert client.get(reverse("dashboard")).status_code == 200
    user.refresh_from_db()
    [mailbox] = mailbox_list(account=user.account)
    assert mailbox.local_part != "admin"  # role names stay reserved (admin-user)
