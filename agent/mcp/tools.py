"""The MCP tools, generated from the operation registry (agent.operations): one tool per operation.

A tool is its operation as MCP sees it: the same name, title and description, the input model's JSON
Schema (unknown arguments refused) and the output model's field names, both lean (a tool list is paid for
in every conversation: docs/agents/mcp.md), the annotations. tools/list shows a token only the tools its
scopes and plan allow (agent.gates.visible_operations); any tool may be called. A call runs what the
REST twin runs, through agent.pipeline (the plan and scope gates, input validation, the operation, the
request log, the daily cap), and returns the same JSON object as structured content. Authentication and the
throttle happened on the HTTP request in front of the SDK (agent.mcp.http), which hands over the Actor.
The text content is that object as compact JSON, except where the output model renders a shorter text for
the model to read (`agent_text`: a page of email summaries as one row each under named columns).

Every failure a user can act on is a tool result with isError and no structured content: the output
schema describes a success only, and TypeScript SDK 1.x clients validate structured content against it
even on isError results, throwing instead of showing the problem
(docs/development/decisions/0011-error-results-without-structured-content.md). Its one text block is the
problem's `detail` on one line, then the whole problem object (RFC 9457, the same body REST answers) as
compact JSON. Nothing else builds an error body.
"""

import json
from functools import cache

import mcp_types as types
from mcp.shared.exceptions import MCPError

from agent import gates, pipeline
from agent.operations import registry
from core.errors import problem_details

# The keys agent.mcp.http leaves in the ASGI scope of an authenticated MCP request.
SCOPE_ACTOR = "qmailing.mcp.actor"
SCOPE_STARTED = "qmailing.mcp.started"  # time.perf_counter() when the HTTP request arrived


# Keywords a tool list leaves to the OpenAPI document (which keeps them, and the full shapes of results):
# pydantic's automatic titles (the property or model name again), examples, and the string formats and length
# bounds that only the server's validation needs (it answers validation_error naming the field). The field
# descriptions, enums, numeric ranges and list sizes stay: they guide the choice of arguments.
INPUT_DROPPED = frozenset({"title", "examples", "format", "maxLength", "minLength", "pattern"})
SCHEMA_MAPS = ("properties", "$defs", "patternProperties")  # keys whose values name subschemas, not keywords
SCHEMA_VALUES = ("default", "enum", "const", "required")  # keys whose values are data, not schemas


def lean_schema(schema, *, dropped, optional_null=False):
    """`schema` without the `dropped` keywords, nested models left in `$defs` (declared once, `$ref`'d).

    With `optional_null` (arguments), an optional argument whose default is null is advertised as its
    non-null type alone: leaving it out is how a client says "not given" (the server still accepts a null).
    """
    if isinstance(schema, list):
        return [lean_schema(item, dropped=dropped, optional_null=optional_null) for item in schema]
    if not isinstance(schema, dict):
        return schema
    lean = {}
    for key, value in schema.items():
        if key in dropped:
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            lean[key] = {name: lean_schema(sub, dropped=dropped, optional_null=optional_null)
                         for name, sub in value.items()}
        elif key in SCHEMA_VALUES:
            lean[key] = value
        else:
            lean[key] = lean_schema(value, dropped=dropped, optional_null=optional_null)
    return _without_null_branch(lean, optional_null=optional_null and schema.get("default", 0) is None)


def result_fields_schema(schema):
    """The schema of a result as tools/list shows it: an object that always holds every top-level field of the
    output model (`required`, by name).

    A tool list is sent on every connection and read by every client, and the results' full shapes would be
    most of it: the compact schemas with `$defs` alone came to about 20,000 characters for the 27 tools, and
    top-level types to 8,600, beside some 26,000 for the arguments, the descriptions and the envelope. So the
    list names what a result holds (every field is always present, null when empty) and leaves the types and
    nested shapes to the OpenAPI document (/api/v1/pub/openapi.json), which is generated from the same
    output models. Every success result validates against it (tests/agent/mcp/test_matrix.py).
    """
    return {"type": "object", "required": list(schema.get("properties", {}))}


def _without_null_branch(schema, *, optional_null):
    branches = schema.get("anyOf")
    if not isinstance(branches, list) or {"type": "null"} not in branches or len(branches) != 2:
        return schema
    other = next(branch for branch in branches if branch != {"type": "null"})
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    if optional_null:
        rest.pop("default", None)
        return {**other, **rest}
    if not isinstance(other.get("type"), str) or "$ref" in other or "enum" in other:
        return schema
    return {**other, **rest, "type": [other["type"], "null"]}


def input_schema(operation):
    """The JSON Schema of the tool's arguments: the input model's, refusing unknown arguments, without the
    keywords a tool list need not repeat (field descriptions stay: they guide the choice of arguments)."""
    schema = operation.input.model_json_schema(mode="validation")
    schema["additionalProperties"] = False  # the model forbids extras; say it even if pydantic did not
    schema.setdefault("properties", {})
    # A model's docstring is written for the code's readers (the tool's description speaks to the model).
    schema.pop("description", None)
    for model in schema.get("$defs", {}).values():
        model.pop("description", None)
    return lean_schema(schema, dropped=INPUT_DROPPED, optional_null=True)


def output_schema(operation):
    """The JSON Schema of the structured result (what `model_dump(mode="json")` of the output model gives), as
    tools/list advertises it (result_fields_schema)."""
    return result_fields_schema(operation.output.model_json_schema(mode="serialization"))


def tool_annotations(operation):
    """The MCP annotations, each hint only where it says something: where it differs from the protocol's
    default, and destructive and idempotent only for a tool that changes something (the protocol gives them
    meaning only then). The title is the tool's own `title`."""
    defaults = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}
    hints = {key: value for key, value in operation.tool_annotations().items()
             if key in defaults and value != defaults[key]}
    if operation.annotations.read_only:
        hints.pop("destructiveHint", None)
        hints.pop("idempotentHint", None)
    return types.ToolAnnotations(**hints)


@cache
def _definitions():
    """Every tool, by name, as an MCP `Tool` (built once; the registry is fixed at start-up)."""
    return {
        operation.name: types.Tool(
            name=operation.name,
            title=operation.title,
            description=operation.description,
            input_schema=input_schema(operation),
            output_schema=output_schema(operation),
            annotations=tool_annotations(operation),
        )
        for operation in registry().values()
    }


def tool_definitions(actor=None):
    """The tools in registry order: every one, or with `actor` those it may call (agent.gates.visible_operations,
    its scopes and its plan). A hidden tool is still served: calling it answers the gate's refusal."""
    definitions = _definitions()
    if actor is None:
        return list(definitions.values())
    return [definitions[operation.name] for operation in gates.visible_operations(actor)]


def tool_names(actor):
    """The names tools/list shows `actor` (what a list_changed notification compares)."""
    return frozenset(operation.name for operation in gates.visible_operations(actor))


@cache
def _input_schemas():
    return {tool.name: tool.input_schema for tool in tool_definitions()}


def tool_input_schema(name):
    """The input schema of tool `name`, or None (the SDK's get_tool_input_schema hook, 2026-07-28 headers).

    Every tool's, whoever asks: a tool a token was not shown is still called through the gates, which answer
    why it may not (the plan or the scope), rather than as an unknown tool."""
    return _input_schemas().get(name)


def instance_for(operation):
    return f"/mcp#{operation.name}"


def success_result(body, *, output=None):
    """The result of a call: the body as structured content and, as text, what the model reads (result_text)."""
    return types.CallToolResult(content=[types.TextContent(type="text", text=result_text(body, output=output))],
                                structured_content=body)


def error_text(problem):
    """The text of an error result: the problem's detail on one line, a newline, the problem as compact JSON.

    An agent reads the first line; the second holds everything the detail tells it to use (errors per
    field, requiredScopes, requiredPlan, upgradeUrl, downloadUrl, retryAfter), for it or its client to parse.
    """
    headline = " ".join(str(problem["detail"]).split())
    return headline + "\n" + json.dumps(problem, separators=(",", ":"))


def result_text(body, *, output=None):
    """The text content of a result: its JSON object, compact, non-ASCII as is (a model reads the text, and pays
    for every character of it); or, when the output model has `agent_text` (a page of summaries), that."""
    render = getattr(output, "agent_text", None)
    return render(body) if render else json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def error_result(error, *, instance):
    """An isError result with the problem in its text only (never as structured content: see the module)."""
    problem = problem_details(error, instance=instance)
    return types.CallToolResult(content=[types.TextContent(type="text", text=error_text(problem))], is_error=True)


def result_of(operation, outcome):
    """The CallToolResult for a pipeline Outcome: the body as structured content, or the problem as text with
    isError."""
    if outcome.error is not None:
        return error_result(outcome.error, instance=instance_for(operation))
    return success_result(outcome.body, output=operation.output)


def run_tool(*, operation, actor, arguments, started=None):
    """One tools/call, synchronously (ORM), through agent.pipeline: the CallToolResult. `started` is when the
    HTTP request arrived, for the logged duration."""
    outcome = pipeline.invoke(operation, actor, arguments, source=pipeline.MCP_TOOL, started=started)
    return result_of(operation, outcome)


async def run_tool_async(*, operation, actor, arguments, started=None):
    """run_tool for an operation with `handler_async` (the long-poll), awaited on the event loop.

    The same result object as run_tool (and the REST twin) for the same call.
    """
    outcome = await pipeline.invoke_async(operation, actor, arguments, source=pipeline.MCP_TOOL, started=started)
    return result_of(operation, outcome)


def operation_for(name):
    """The operation behind tool `name`; an unknown name is a protocol error (JSON-RPC invalid params)."""
    operation = registry().get(name)
    if operation is None:
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {name}. tools/list lists the tools.")
    return operation
