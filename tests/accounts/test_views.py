import re

import pytest
from django.urls import reverse

from accounts.models import User
from domains.models import Domain


def test_sign_up_then_the_emailed_link_signs_in_and_shows_the_dashboard(client, db):
    from django.core import mail

    response = client.post(reverse("account_signup"), {"email": "new@example.com", "password1": "a long enough passphrase", "full_name": "New"})
    assert response.status_code == 302 and response.url == reverse("account_email_verification_sent")
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+)", mail.outbox[0].body).group(1)
    assert client.post(link).status_code == 302
    page = client.get(reverse("dashboard")).content.decode()
    assert "new@qmailing.localhost" in page and "Free" in page


def test_sign_up_errors_are_shown_on_the_form(client, db):
    response = client.post(reverse("account_signup"), {"email": "x@example.com", "password1": "123"})
    assert response.status_code == 400
    assert "too short" in response.content.decode()
    assert not User.objects.filter(email="x@example.com").exists()


def test_sign_in_and_out(client, owner):
    bad = client.post(reverse("account_login"), {"login": "owner@example.org", "password": "wrong"})
    assert bad.status_code == 400 and "are not correct" in bad.content.decode()
    good = client.post(reverse("account_login"), {"login": "OWNER@example.org", "password": "correct horse battery 9"})
    assert good.status_code == 302
    assert client.get(reverse("dashboard")).status_code == 200
    client.post(reverse("account_logout"))
    assert client.get(reverse("dashboard")).status_code == 302


def test_sign_in_never_redirects_off_site(client, owner):
    response = client.post(reverse("account_login"), {"login": "owner@example.org", "password": "correct horse battery 9",
                                                      "next": "https://evil.example/steal"})
    assert response.url == reverse("dashboard")


def test_dashboard_requires_sign_in(client, db):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302 and reverse("account_login") in response.url


def signed_in(client, account):
    client.force_login(account.users.get())
    return client


def test_add_domain_page_then_checklist_then_mailbox(client, owner, dns_server):
    signed_in(client, owner)
    response = client.post(reverse("domains:add"), {"name": "Page.Example"})
    domain = Domain.objects.get(name="page.example")
    assert response.url == reverse("domains:detail", args=[domain.id])
    page = client.get(response.url).content.decode()
    for record in domain.dns_records.all():
        assert record.host in page
    assert "Not checked yet" in page and domain.dkim_public_key in page and "BEGIN PRIVATE KEY" not in page

    client.post(reverse("domains:verify", args=[domain.id]))
    page = client.get(reverse("domains:detail", args=[domain.id])).content.decode()
    assert "Missing" in page and "Pending DNS" in page

    dns_server.publish_checklist(domain)
    client.post(reverse("domains:verify", args=[domain.id]))
    page = client.get(reverse("domains:detail", args=[domain.id])).content.decode()
    assert "Verified" in page

    response = client.post(reverse("mailboxes:create"), {"local_part": "hello", "domain": str(domain.id), "display_name": "Hi",
                                                          "forwarding_addresses": "", "forward_keep_copy": "on"})
    mailbox = owner.mailboxes.get(local_part="hello")
    assert response.url == reverse("mailboxes:detail", args=[mailbox.id])
    assert "hello@page.example" in client.get(reverse("dashboard")).content.decode()


def test_form_errors_are_clear_messages(client, owner):
    signed_in(client, owner)
    response = client.post(reverse("domains:add"), {"name": "a@b"})
    assert response.status_code == 400 and "without a mailbox" in response.content.decode()
    shared = Domain.objects.get(is_shared=True)
    response = client.post(reverse("mailboxes:create"), {"local_part": "a..b", "domain": str(shared.id)})
    assert response.status_code == 400 and "dot" in response.content.decode()


def test_unverified_domain_is_not_offered_for_mailboxes(client, owner):
    signed_in(client, owner)
    client.post(reverse("domains:add"), {"name": "notyet.example"})
    domain = Domain.objects.get(name="notyet.example")
    response = client.post(reverse("mailboxes:create"), {"local_part": "x", "domain": str(domain.id)})
    assert response.status_code == 400
    assert not owner.mailboxes.filter(local_part="x").exists()


def test_outsider_pages_answer_404(client, owner, outsider, verified_domain):
    mailbox = owner.mailboxes.first()
    signed_in(client, outsider)
    for url in (reverse("domains:detail", args=[verified_domain.id]), reverse("mailboxes:detail", args=[mailbox.id])):
        assert client.get(url).status_code == 404
    assert client.post(reverse("domains:verify", args=[verified_domain.id])).status_code == 404
    assert client.post(reverse("domains:delete", args=[verified_domain.id])).status_code == 404
    assert client.post(reverse("mailboxes:status", args=[mailbox.id]), {"status": "suspended"}).status_code == 404
    assert client.post(reverse("mailboxes:delete", args=[mailbox.id])).status_code == 404
    mailbox.refresh_from_db()
    assert mailbox.status == "active"
    signed_in(client, owner)
    assert client.post(reverse("mailboxes:delete", args=[mailbox.id])).url == reverse("dashboard")
    assert not owner.mailboxes.filter(pk=mailbox.pk).exists()


def test_groups_pages(client, owner, verified_domain):
    signed_in(client, owner)
    mailbox = owner.mailboxes.first()
    client.post(reverse("mailboxes:groups"), {"name": "Support", "members": [str(mailbox.id)]})
    group = owner.mailbox_groups.get()
    assert list(group.members.all()) == [mailbox]
    assert "Support" in client.get(reverse("mailboxes:detail", args=[mailbox.id])).content.decode()


def test_admin_lists_every_model(client, owner, verified_domain):
    from django.contrib.admin.sites import site

    admin_user = User.objects.create_superuser(email="root@example.com", password="x")
    client.force_login(admin_user)
    for model in site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url
    domain_page = client.get(reverse("admin:domains_domain_change", args=[verified_domain.id])).content.decode()
    assert "BEGIN PRIVATE KEY" not in domain_page
    from tests.mailboxes.outbound_helpers import receive

    email = receive(owner.mailboxes.first(), subject="Admin view", attachments=[("a.txt", "text/plain", b"hi")])
    page = client.get(reverse("admin:mailboxes_email_change", args=[email.id])).content.decode()
    assert "Admin view" in page and "a.txt" in page


def test_plan_page_is_where_limit_errors_point(client, free_account, settings):
    from domains.services import domain_add
    from core.errors import LimitReached

    signed_in(client, free_account)
    page = client.get(reverse("plan")).content.decode()
    assert "Your plan: Free" in page and "Pro Max" in page
    domain_add(account=free_account, name="one.example")
    with pytest.raises(LimitReached) as err:
        domain_add(account=free_account, name="two.example")
    assert err.value.extra["upgradeUrl"].endswith(reverse("plan"))
    assert client.get(reverse("plan")).status_code == 200


def _sign_in(client, email, password, ip="198.51.100.7", url=None):
    url = url or reverse("account_login")
    fields = {"username": email} if url.startswith("/admin/") else {"login": email}
    return client.post(url, {**fields, "password": password}, REMOTE_ADDR=ip)


def test_eleventh_wrong_password_is_refused_even_when_correct(client, owner):
    for _ in range(10):
        assert _sign_in(client, "owner@example.org", "wrong").status_code == 400
    refused = _sign_in(client, "owner@example.org", "correct horse battery 9")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 15 * 60
    assert "Too many sign-in attempts. Try again in 15 minutes." in refused.content.decode()
    assert client.get(reverse("dashboard")).status_code == 302  # not signed in
    # The lock is on the email, whichever address the guesses come from.
    assert _sign_in(client, "owner@example.org", "correct horse battery 9", ip="192.0.2.99").status_code == 429


def test_another_account_from_another_ip_is_unaffected(client, owner, outsider):
    for _ in range(11):
        _sign_in(client, "owner@example.org", "wrong")
    assert _sign_in(client, "outsider@example.net", "correct horse battery 9", ip="192.0.2.44").status_code == 302


def test_throttling_does_not_reveal_whether_an_account_exists(client, owner):
    answers = {}
    for email in ("owner@example.org", "nobody@example.org"):
        statuses = [_sign_in(client, email, "wrong").status_code for _ in range(11)]
        refused = _sign_in(client, email, "wrong")
        message = re.search(r'<ul class="errorlist nonfield">.*?</ul>', refused.content.decode(), re.S)[0]
        answers[email] = (statuses, refused.status_code, 0 < int(refused["Retry-After"]) <= 900, message)
    assert answers["owner@example.org"] == answers["nobody@example.org"]
    assert answers["owner@example.org"][0] == [400] * 10 + [429]


def test_successful_sign_ins_give_their_attempt_back(client, owner):
    for _ in range(9):
        _sign_in(client, "owner@example.org", "wrong")
    for _ in range(3):
        assert _sign_in(client, "owner@example.org", "correct horse battery 9").status_code == 302
        client.post(reverse("account_logout"))
    assert _sign_in(client, "owner@example.org", "wrong").status_code == 400  # the tenth failure
    assert _sign_in(client, "owner@example.org", "correct horse battery 9").status_code == 429


def test_per_ip_limit_across_many_accounts(client, owner):
    for n in range(30):
        assert _sign_in(client, f"guess{n}@example.org", "wrong", ip="203.0.113.5").status_code == 400
    refused = _sign_in(client, "owner@example.org", "correct horse battery 9", ip="203.0.113.5")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert _sign_in(client, "owner@example.org", "correct horse battery 9", ip="203.0.113.6").status_code == 302


def test_behind_the_proxy_the_forwarded_client_is_counted(client, owner, settings):
    settings.QMAILING_BEHIND_TLS_PROXY = True
    for n in range(30):
        client.post(reverse("account_login"), {"login": f"guess{n}@example.org", "password": "wrong"},
                    REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, 203.0.113.5")  # a spoofed first hop
    blocked = client.post(reverse("account_login"), {"login": "owner@example.org", "password": "correct horse battery 9"},
                          REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert blocked.status_code == 429
    other = client.post(reverse("account_login"), {"login": "owner@example.org", "password": "correct horse battery 9"},
                        REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.6")
    assert other.status_code == 302




def test_the_admin_signs_in_through_the_dashboard_sign_in_with_its_second_factor(client, db):
    """/admin/login/ sends to allauth's sign-in (its rate limits and the second factor), and back to the admin."""
    import time

    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret, hotp_value

    from allauth.account.models import EmailAddress

    user = User.objects.create_superuser(email="root@example.com", password="root password 1")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)  # confirmed earlier
    response = client.get(reverse("admin:login") + "?next=/admin/")
    assert response.status_code == 302 and response.url.startswith(reverse("account_login"))
    # A password posted to the admin's own form never signs in.
    client.post(reverse("admin:login"), {"username": "root@example.com", "password": "root password 1"})
    assert client.get(reverse("admin:index")).status_code == 302
    # With TOTP on, the password leads to the code step, and only the code opens the admin.
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    signin = client.post(reverse("account_login") + "?next=/admin/", {"login": "root@example.com", "password": "root password 1"})
    assert signin.status_code == 302 and signin.url == reverse("mfa_authenticate")
    assert client.get(reverse("admin:index")).status_code == 302
    code = format(hotp_value(secret, int(time.time()) // 30), "06d")
    done = client.post(reverse("mfa_authenticate"), {"code": code})
    assert done.status_code == 302 and done.url == "/admin/"
    assert client.get(reverse("admin:index")).status_code == 200
