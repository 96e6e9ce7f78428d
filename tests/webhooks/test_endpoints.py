"""Webhook endpoints: register (https, public addresses only, secret shown once and stored encrypted), list, revoke."""

import pytest
from django.db import connection

from accounts.models import Plan
from accounts.services import account_set_plan
from core.errors import Invalid
from agent.operations import registry
from tests.api_helpers import call, token_for
from webhooks.models import WebhookEndpoint
from webhooks.secrets import secret_decrypt
from webhooks.services import webhook_register
from webhooks.ssrf import address_blocked, webhook_target


@pytest.fixture
def pro(owner):
    account_set_plan(account=owner, plan_code=Plan.PRO)
    return owner


@pytest.fixture
def public_host(dns_server):
    dns_server.add("hooks.example.com", "A", "93.184.215.14")
    return "hooks.example.com"


def test_register_returns_the_secret_once_and_stores_only_its_ciphertext(client, pro, public_host):
    token = token_for(pro, scopes="webhook:manage")
    response = call(client, registry()["qmailing_register_webhook"], token=token, args={
        "url": "https://hooks.example.com/in", "event_types": ["email.received", "email.sent"], "description": "CRM"})
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) >= 6 + 32
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert secret not in endpoint.secret_encrypted and secret_decrypt(endpoint.secret_encrypted) == secret
    with connection.cursor() as cursor:  # nowhere in the table in plain text
        cursor.execute("SELECT * FROM webhooks_webhookendpoint")
        assert all(secret not in str(value) for row in cursor.fetchall() for value in row)
    listed = call(client, registry()["qmailing_list_webhooks"], token=token).json()
    assert [item["id"] for item in listed["items"]] == [body["id"]]
    assert "secret" not in listed["items"][0] and listed["items"][0]["event_types"] == ["email.received", "email.sent"]


def test_delete_is_an_idempotent_revoke_and_foreign_endpoints_are_not_found(client, pro, outsider, public_host):
    token = token_for(pro, scopes="webhook:manage")
    endpoint, _ = webhook_register(account=pro, url="https://hooks.example.com/a", event_types=["*"])
    first = call(client, registry()["qmailing_delete_webhook"], token=token, args={"webhook_id": endpoint.id})
    again = call(client, registry()["qmailing_delete_webhook"], token=token, args={"webhook_id": endpoint.id})
    assert first.status_code == again.status_code == 200
    assert first.json()["status"] == "revoked" and first.json()["revoked_at"] == again.json()["revoked_at"]
    account_set_plan(account=outsider, plan_code=Plan.PRO)
    stranger = call(client, registry()["qmailing_delete_webhook"], token=token_for(outsider, scopes="webhook:manage"),
                    args={"webhook_id": endpoint.id})
    assert stranger.status_code == 404


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "0.0.0.0", "224.0.0.1",
    "::1", "fc00::1", "fe80::1", "::ffff:7f00:1", "::ffff:808:808", "64:ff9b::7f00:1", "2002:7f00:1::1",
    "2001:0:4136:e378::1", "ff02::1", "::",
])
def test_every_blocked_range_is_refused_at_registration(pro, dns_server, address):
    assert address_blocked(address)
    dns_server.add("rebind.example.com", "AAAA" if ":" in address else "A", address)
    with pytest.raises(Invalid) as error:
        webhook_register(account=pro, url="https://rebind.example.com/hook", event_types=["*"])
    assert error.value.code == "webhook_url_refused"


def test_one_private_address_among_public_ones_is_enough_to_refuse(pro, dns_server):
    dns_server.add("mixed.example.com", "A", "93.184.215.14")
    dns_server.add("mixed.example.com", "A", "10.0.0.5")
    with pytest.raises(Invalid):
        webhook_target("https://mixed.example.com/")


@pytest.mark.parametrize("url", ["http://hooks.example.com/in", "ftp://hooks.example.com/", "https://user:pw@hooks.example.com/",
                                 "https://127.0.0.1/", "https://[::1]/", "https://hooks.example.com/a b", "https:///nohost"])
def test_urls_that_are_not_public_https_are_refused(pro, public_host, url):
    with pytest.raises(Invalid):
        webhook_register(account=pro, url=url, event_types=["*"])


def test_http_on_loopback_only_for_hosts_on_the_allow_list(pro, settings):
    with pytest.raises(Invalid):
        webhook_target("http://127.0.0.1:9000/hook")
    settings.QMAILING_WEBHOOK_HTTP_ALLOWED_HOSTS = ["127.0.0.1"]
    target = webhook_target("http://127.0.0.1:9000/hook")
    assert (target.host, target.port, target.addresses) == ("127.0.0.1", 9000, ("127.0.0.1",))


def test_event_types_are_checked_against_the_catalogue(client, pro, public_host):
    token = token_for(pro, scopes="webhook:manage")
    response = call(client, registry()["qmailing_register_webhook"], token=token, args={
        "url": "https://hooks.example.com/in", "event_types": ["email.exploded"]})
    assert response.status_code == 400 and "event_types.0" in response.json()["errors"]
    everything, _ = webhook_register(account=pro, url="https://hooks.example.com/all", event_types=["*", "email.sent"])
    assert everything.event_types == ["*"] and everything.wants("domain.verified")


def test_webhooks_need_pro(client, owner, public_host):
    response = call(client, registry()["qmailing_list_webhooks"], token=token_for(owner, scopes="webhook:manage"))
    assert response.status_code == 402 and response.json()["requiredPlan"] == "PRO"


def test_ipv4_mapped_forms_are_blocked_however_they_are_written():
    assert address_blocked("::ffff:127.0.0.1") and address_blocked("::ffff:8.8.8.8")
    assert not address_blocked("93.184.215.14") and not address_blocked("2606:2800:21f:cb07:6820:80da:af6b:8b2c")


def test_rotating_the_secret_over_rest_returns_the_new_one_once(client, pro, public_host):
    token = token_for(pro, scopes="webhook:manage")
    endpoint, old = webhook_register(account=pro, url="https://hooks.example.com/r", event_types=["*"])
    response = call(client, registry()["qmailing_rotate_webhook_secret"], token=token,
                    args={"webhook_id": endpoint.id, "overlap_hours": 2})
    assert response.status_code == 200, response.content
    new = response.json()["secret"]
    endpoint.refresh_from_db()
    assert new != old and secret_decrypt(endpoint.secret_encrypted) == new
    assert secret_decrypt(endpoint.previous_secret_encrypted) == old
