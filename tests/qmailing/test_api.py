"""The generated REST layer: every answer under /api/ is JSON, every error a problem detail without a traceback."""

import pytest
from pydantic import BaseModel, ConfigDict, Field

from accounts.models import TOOL_GROUP_MAILBOXES
from agent.operations import UNTRUSTED_CONTENT, Annotations, Operation, registry
from tests.api_helpers import call, token_for
from tests.api_helpers import problem_of as _problem

READ = Annotations(read_only=True, destructive=False, idempotent=True, open_world=False)


@pytest.mark.parametrize("path", ["/api/", "/api", "/api/v1/pub/", "/api/v1/pub/nothing", "/api/v2/mailboxes",
                                  "/api/v1/pub/mailboxes/x/y/z"])
def test_unknown_api_paths_are_problem_json_404(client, db, path):
    body = _problem(client.get(path), 404, "endpoint_not_found")
    assert body["instance"] == path


def test_no_csrf_html_under_api(owner):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    _problem(strict.post("/api/v1/pub/nowhere", "{}", content_type="application/json"), 404, "endpoint_not_found")
    response = strict.post("/api/v1/pub/mailboxes", '{"local_part": "ada"}', content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token_for(owner)}")
    assert response.status_code == 201, response.content


def test_wrong_method_is_405_with_allow(client, owner):
    response = client.delete("/api/v1/pub/mailboxes", HTTP_AUTHORIZATION=f"Bearer {token_for(owner)}")
    _problem(response, 405, "method_not_allowed")
    assert set(response["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_options_is_not_an_ungated_side_door(client, db):
    _problem(client.options("/api/v1/pub/mailboxes"), 405, "method_not_allowed")


@pytest.fixture
def create(owner):
    return registry()["qmailing_create_mailbox"], token_for(owner)


def test_malformed_json_is_400_malformed_request(client, create):
    _, token = create
    response = client.post("/api/v1/pub/mailboxes", "{not json", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    body = _problem(response, 400, "malformed_request")
    assert "body" in body["errors"]


def test_a_body_that_is_not_an_object_is_400(client, create):
    _, token = create
    response = client.post("/api/v1/pub/mailboxes", "[1, 2]", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert "body" in _problem(response, 400, "validation_error")["errors"]


def test_form_bodies_are_415(client, create):
    _, token = create
    response = client.post("/api/v1/pub/mailboxes", {"local_part": "x"}, HTTP_AUTHORIZATION=f"Bearer {token}")
    _problem(response, 415, "unsupported_media_type")


def test_a_path_parameter_cannot_be_sent_twice(client, owner):
    mailbox = owner.mailboxes.get()
    response = client.get(f"/api/v1/pub/mailboxes/{mailbox.id}?mailbox_id={mailbox.id}",
                          HTTP_AUTHORIZATION=f"Bearer {token_for(owner)}")
    assert "mailbox_id" in _problem(response, 400, "validation_error")["errors"]


def test_a_crash_is_a_500_problem_without_traceback(client, owner, monkeypatch):
    import mailboxes.operations

    def explode(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(mailboxes.operations, "mailbox_page", explode)
    response = call(client, registry()["qmailing_list_mailboxes"], token=token_for(owner))
    body = _problem(response, 500, "server_error")
    assert "secret internals" not in body["detail"] and "secret internals" not in response.content.decode()


# --- the registry refuses a declaration that could not serve both REST and MCP truthfully

class _Loose(BaseModel):
    mailbox_id: str = Field(description="An id.")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mailbox_id: str = Field(description="An id.")


class _Undescribed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mailbox_id: str


def _declare(**changes):
    fields = dict(name="qmailing_test_thing", title="Test", description="Test.", input=_Strict, output=_Strict,
                  scope="mailbox:read", plan_group=TOOL_GROUP_MAILBOXES, annotations=READ, method="GET",
                  path="things/{mailbox_id}", handler=lambda **kwargs: None)
    fields.update(changes)
    return Operation(**fields)


@pytest.mark.parametrize("changes, message", [
    ({"name": "list_things"}, "name must be"),
    ({"scope": "things:read"}, "unknown scope"),
    ({"plan_group": "gold"}, "unknown plan group"),
    ({"method": "FETCH"}, "method must be"),
    ({"input": _Loose}, "forbid extra"),
    ({"input": _Undescribed}, "no description"),
    ({"path": "things/{thing_id}"}, "path parameters"),
    ({"path": "/api/v1/pub/things/{mailbox_id}"}, "relative"),
])
def test_operation_declarations_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        _declare(**changes)


def test_a_good_declaration_knows_its_path_parameters():
    operation = _declare()
    assert operation.path_params == ("mailbox_id",) and operation.rest_path == "/api/v1/pub/things/{mailbox_id}"


def test_every_registered_operation_tells_models_what_they_need():
    for operation in registry().values():
        assert 80 <= len(operation.description) <= 400, operation.name  # when to use it, not the schema again
        assert len(operation.example_prompt) >= 20, operation.name  # the /docs/mcp page shows it
        assert operation.annotations.read_only == (operation.method == "GET"), operation.name
        if operation.scope.startswith("email:"):  # it hands mail to a model: say that mail is data, not orders
            assert UNTRUSTED_CONTENT in operation.description, operation.name
        for name, field in operation.input.model_fields.items():
            assert field.description, (operation.name, name)
        if operation.method == "GET" and "next_cursor" in operation.output.model_fields:
            limit = operation.input.model_fields["limit"]
            assert any(getattr(m, "le", None) == 100 for m in limit.metadata), operation.name


def test_every_operation_has_json_schemas_for_mcp_and_openapi():
    """The MCP tools and the OpenAPI document are generated from these: they must render, closed and described."""
    for operation in registry().values():
        schema = operation.input.model_json_schema()
        assert schema["type"] == "object" and schema["additionalProperties"] is False, operation.name
        for name, prop in schema["properties"].items():
            assert prop.get("description"), (operation.name, name)
        output = operation.output.model_json_schema(mode="serialization")
        assert output["type"] == "object", operation.name


def test_tool_annotations_are_ready_for_the_mcp_sdk():
    from mcp.types import ToolAnnotations

    for operation in registry().values():
        annotations = ToolAnnotations(**operation.tool_annotations())  # camelCase, as the protocol spells them
        assert annotations.model_dump(by_alias=True, exclude_none=True) == operation.tool_annotations()
