"""The OpenAPI document: generated from the registry, complete, valid OpenAPI 3.1, served without a token; the
docs page loads only local assets."""

import re

import pytest
import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator

from accounts.scopes import SCOPES
from agent.operations import registry

pytestmark = pytest.mark.django_db


@pytest.fixture
def document(client):
    response = client.get("/api/v1/pub/openapi.json")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    return response.json()


def test_served_without_a_token_and_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_yaml_twin(client, document):
    response = client.get("/api/v1/pub/openapi.yaml")
    assert response.status_code == 200
    assert yaml.safe_load(response.content) == document


def test_every_registry_entry_is_documented(document):
    """A new registry entry is in the document, with its tool name, models and errors, without anyone adding it."""
    operations = {op["operationId"]: (method.upper(), path, op)
                  for path, item in document["paths"].items() for method, op in item.items()}
    assert sorted(operations) == sorted(registry())
    schemas = document["components"]["schemas"]
    for name, entry in registry().items():
        method, path, op = operations[name]
        assert (method, path) == (entry.method, entry.rest_path)
        assert op["summary"] == entry.title and op["description"] == entry.description
        assert {p["name"] for p in op.get("parameters", []) if p["in"] == "path"} == set(entry.path_params)
        fields = {f.alias or n for n, f in entry.input.model_fields.items()} - set(entry.path_params)
        if entry.method in ("POST", "PUT", "PATCH"):
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert set(schemas[ref.rsplit("/", 1)[1]].get("properties", {})) == fields
        else:
            assert {p["name"] for p in op.get("parameters", []) if p["in"] == "query"} == fields
        success = op["responses"][str(entry.success_status)]["content"]["application/json"]["schema"]
        assert success == {"$ref": f"#/components/schemas/{entry.output.__name__}"}
        for status in ("400", "401", "402", "403", "404", "429"):
            assert op["responses"][status]["content"]["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"}
        assert {"bearerAuth": []} in op["security"] and {"oauth2": [entry.scope]} in op["security"]
    assert "errors" in schemas["Problem"]["properties"]


def test_security_schemes(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    flow = schemes["oauth2"]["flows"]["authorizationCode"]
    assert set(flow["scopes"]) == set(SCOPES)
    assert flow["authorizationUrl"].endswith("/oauth/authorize/") and flow["tokenUrl"].endswith("/oauth/token/")


def test_docs_page_uses_local_assets_only(client, settings):
    response = client.get("/api/v1/pub/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html and "/api/v1/pub/openapi.json" in html
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert urls, html
    assert not [u for u in urls if re.match(r"(https?:)?//", u)], urls
    assert "cdn" not in html.lower()
    for url in urls:  # each asset is served by us (whitenoise/staticfiles from drf-spectacular-sidecar)
        if url.startswith(settings.STATIC_URL):
            from django.contrib.staticfiles import finders

            assert finders.find(url[len(settings.STATIC_URL):]), url
    assert "Content-Security-Policy" not in response  # no CSP in this app that would block the page's scripts


def test_the_mail_warning_is_said_once_in_the_document_and_pointed_at_by_the_mail_operations(document):
    from agent.operations import UNTRUSTED_CONTENT, UNTRUSTED_CONTENT_WARNING

    assert UNTRUSTED_CONTENT_WARNING in document["info"]["description"]
    mail = [entry.name for entry in registry().values() if entry.scope.startswith("email:")]
    described = {op["operationId"]: op["description"] for item in document["paths"].values() for op in item.values()}
    assert mail and all(UNTRUSTED_CONTENT in described[name] for name in mail)
    assert all(UNTRUSTED_CONTENT_WARNING not in text for text in described.values())
