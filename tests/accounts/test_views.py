import pytest
from django.urls import reverse

from accounts.models import User
from domains.models import Domain


def test_sign_up_signs_in_and_shows_the_dashboard(client, db):
    response = client.post(reverse("accounts:signup"), {"email": "new@example.com", "password": "a long enough passphrase", "full_name": "New"})
    assert response.status_code == 302 and response.url == reverse("dashboard")
    page = client.get(reverse("dashboard")).content.decode()
    assert "new@qmailing.localhost" in page and "Free" in page


def test_sign_up_errors_are_shown_on_the_form(client, db):
    response = client.post(reverse("accounts:signup"), {"email": "x@example.com", "password": "123"})
    assert response.status_code == 400
    assert "too short" in response.content.decode()
    assert not User.objects.filter(email="x@example.com").exists()


def test_sign_in_and_out(client, owner):
    bad = client.post(reverse("accounts:signin"), {"email": "owner@example.org", "password": "wrong"})
    assert bad.status_code == 400 and "do not match" in bad.content.decode()
    good = client.post(reverse("accounts:signin"), {"email": "OWNER@example.org", "password": "correct horse battery 9"})
    assert good.status_code == 302
    assert client.get(reverse("dashboard")).status_code == 200
    client.post(reverse("accounts:signout"))
    assert client.get(reverse("dashboard")).status_code == 302


def test_sign_in_never_redirects_off_site(client, owner):
    response = client.post(reverse("accounts:signin"), {"email": "owner@example.org", "password": "correct horse battery 9",
                                                        "next": "https://evil.example/steal"})
    assert response.url == reverse("dashboard")


def test_dashboard_requires_sign_in(client, db):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302 and reverse("accounts:signin") in response.url


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
    from qmailing.errors import LimitReached

    signed_in(client, free_account)
    page = client.get(reverse("plan")).content.decode()
    assert "Your plan: Free" in page and "Pro Max" in page
    domain_add(account=free_account, name="one.example")
    with pytest.raises(LimitReached) as err:
        domain_add(account=free_account, name="two.example")
    assert err.value.extra["upgradeUrl"].endswith(reverse("plan"))
    assert client.get(reverse("plan")).status_code == 200
