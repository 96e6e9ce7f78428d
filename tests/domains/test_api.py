"""The domain operations over REST, as an agent with a token uses them."""

import pytest

from domains.services import domain_add
from agent.operations import registry
from tests.api_helpers import call, token_for


@pytest.fixture
def token(owner):
    return token_for(owner, scopes="domain:read")


def test_list_domains_pages_newest_first(client, owner, outsider, token):
    older, newer = domain_add(account=owner, name="one.example"), domain_add(account=owner, name="two.example")
    domain_add(account=outsider, name="theirs.example")
    list_domains = registry()["qmailing_list_domains"]
    page = call(client, list_domains, token=token, args={"limit": 1}).json()
    assert [d["name"] for d in page["items"]] == ["two.example"] and page["items"][0]["status"] == "pending"
    rest = call(client, list_domains, token=token, args={"cursor": page["next_cursor"]}).json()
    assert [d["id"] for d in rest["items"]] == [str(older.id)] and rest["next_cursor"] is None
    assert newer.name not in str(rest)


def test_get_dns_records_returns_the_checklist(client, owner, token):
    domain = domain_add(account=owner, name="brand.example")
    response = call(client, registry()["qmailing_get_dns_records"], token=token, args={"domain_id": domain.id})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["domain"] == "brand.example" and body["status"] == "pending"
    assert {r["kind"] for r in body["records"]} == {"ownership", "mx", "spf", "dkim", "dmarc"}
    ownership = next(r for r in body["records"] if r["kind"] == "ownership")
    assert domain.ownership_token in ownership["value"] and ownership["state"] == "unchecked"


def test_add_then_verify_a_domain(client, owner, outsider, dns_server):
    write = token_for(owner, scopes="domain:read domain:write")
    added = call(client, registry()["qmailing_add_domain"], token=write, args={"name": "Brand.Example"})
    assert added.status_code == 201, added.content
    body = added.json()
    assert body["name"] == "brand.example" and body["status"] == "pending" and body["verified_at"] is None
    again = call(client, registry()["qmailing_add_domain"], token=write, args={"name": "brand.example"})
    assert (again.status_code, again.json()["code"]) == (409, "domain_taken")

    verify = registry()["qmailing_verify_domain"]
    unpublished = call(client, verify, token=write, args={"domain_id": body["id"]}).json()
    assert unpublished["status"] == "pending" and unpublished["last_checked_at"]
    assert next(r for r in unpublished["records"] if r["kind"] == "ownership")["state"] != "ok"

    domain = owner.domains.get(pk=body["id"])
    dns_server.publish_checklist(domain)
    verified = call(client, verify, token=write, args={"domain_id": body["id"]})
    assert verified.status_code == 200, verified.content
    assert verified.json()["status"] == "verified"
    assert all(r["state"] == "ok" for r in verified.json()["records"] if r["required"])

    read_only = call(client, verify, token=token_for(owner, scopes="domain:read"), args={"domain_id": body["id"]})
    assert (read_only.status_code, read_only.json()["requiredScopes"]) == (403, ["domain:write"])
