"""An operation is declared by decorating its handler (agent.operations.operation): what it derives, and how
collect() finds the modules that declare operations."""

import pytest
from django.apps import apps
from pydantic import Field

from accounts.models import TOOL_GROUP_MAILBOXES
from agent import operations
from agent.operations import Input, Output, annotations_for, operation, operation_modules, registry

THING_LIMIT = 7  # said in a docstring below as {THING_LIMIT}


class ThingInput(Input):
    thing_id: str = Field(description="An id.")


class ThingOut(Output):
    id: str


@pytest.fixture
def empty_registry(monkeypatch):
    monkeypatch.setattr(operations, "_registry", {})


def test_a_decorated_handler_is_declared_from_its_name_docstring_and_hints(empty_registry):
    @operation("GET", "things/{thing_id}", scope="mailbox:read", plan_group=TOOL_GROUP_MAILBOXES, example_prompt="Hi")
    def get_thing(*, actor, args: ThingInput) -> ThingOut:
        """Get a thing

        Get one thing, at most
        {THING_LIMIT} of them.
        """
        return {"id": args.thing_id}

    declared = registry()["qmailing_get_thing"]
    assert (declared.title, declared.description) == ("Get a thing", "Get one thing, at most 7 of them.")
    assert (declared.input, declared.output, declared.handler) == (ThingInput, ThingOut, get_thing)
    assert declared.annotations == annotations_for("GET") and declared.example_prompt == "Hi"
    assert declared.run(actor=None, args=ThingInput(thing_id="a")) == ThingOut(id="a")


@pytest.mark.parametrize("method, read_only, destructive, idempotent", [
    ("GET", True, False, True), ("DELETE", False, True, True), ("POST", False, False, False),
    ("PATCH", False, False, True), ("PUT", False, False, True)])
def test_annotations_follow_the_method(method, read_only, destructive, idempotent):
    notes = annotations_for(method)
    assert (notes.read_only, notes.destructive, notes.idempotent, notes.open_world) == (
        read_only, destructive, idempotent, False)


def test_an_explicit_name_and_annotation_override_win(empty_registry):
    @operation("POST", "things/{thing_id}/check", scope="mailbox:read", plan_group=TOOL_GROUP_MAILBOXES,
               name="qmailing_check_thing", open_world=True, idempotent=True)
    def check(*, actor, args: ThingInput) -> ThingOut:
        """Check a thing

        Check it."""

    notes = registry()["qmailing_check_thing"].annotations
    assert (notes.read_only, notes.destructive, notes.idempotent, notes.open_world) == (False, False, True, True)


def test_a_handler_without_docstring_or_hints_is_refused(empty_registry):
    def no_docstring(*, actor, args: ThingInput) -> ThingOut:
        pass

    def no_hints(*, actor, args):
        """No hints

        None."""

    declare = operation("GET", "things/{thing_id}", scope="mailbox:read", plan_group=TOOL_GROUP_MAILBOXES)
    with pytest.raises(ValueError, match="no docstring"):
        declare(no_docstring)
    with pytest.raises(ValueError, match="needs `args"):
        declare(no_hints)


def test_models_that_are_not_pydantic_are_refused(empty_registry):
    with pytest.raises(ValueError, match="must be pydantic models"):
        @operation("GET", "things/{thing_id}", scope="mailbox:read", plan_group=TOOL_GROUP_MAILBOXES)
        def get_thing(*, actor, args: dict) -> ThingOut:
            """Get a thing

            Get it."""


def test_the_import_time_checks_still_apply(empty_registry):
    with pytest.raises(ValueError, match="unknown scope"):
        @operation("GET", "things/{thing_id}", scope="things:read", plan_group=TOOL_GROUP_MAILBOXES)
        def get_thing(*, actor, args: ThingInput) -> ThingOut:
            """Get a thing

            Get it."""


def test_collect_finds_every_operation_module_of_an_app():
    assert operation_modules(apps.get_app_config("mailboxes")) == [
        "mailboxes.operations", "mailboxes.store.draft_operations", "mailboxes.store.operations"]
    assert operation_modules(apps.get_app_config("domains")) == ["domains.operations"]
    every_module = {operation.handler.__module__ for operation in registry().values()}
    assert every_module == {"domains.operations", "mailboxes.operations", "mailboxes.store.draft_operations",
                            "mailboxes.store.operations", "webhooks.operations", "events.operations"}
