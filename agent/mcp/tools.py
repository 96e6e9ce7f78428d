"""The MCP tools, generated from the operation registry (agent.operations): one tool per operation.

A tool is its operation as MCP sees it: the same name, title and description, the input model's JSON
Schema (unknown arguments refused), the output model's schema, the annotations. A call runs what the
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

from agent import pipeline
from agent.operations import registry
from core.errors import problem_details

# The keys agent.mcp.http leaves in the ASGI scope of an authenticated MCP request.
SCOPE_ACTOR = "qmailing.mcp.actor"
SCOPE_STARTED = "qmailing.mcp.started"  # time.perf_counter() when the HTTP request arrived


def input_schema(operation):
    """The JSON Schema of the tool's arguments: the input model's, refusing unknown arguments."""
    schema = operation.input.model_json_schema(mode="validation")
    schema["additionalProperties"] = False  # the model forbids extras; say it even if pydantic did not
    schema.setdefault("properties", {})
    return schema


def output_schema(operation):
    """The JSON Schema of the structured result: what `model_dump(mode="json")` of the output model gives."""
    return operation.output.model_json_schema(mode="serialization")


@cache
def tool_definitions():
    """Every tool, in registry order, as MCP `Tool` objects (built once; the registry is fixed at start-up)."""
    return [
        types.Tool(
            name=operation.name,
            title=operation.title,
            description=operation.description,
            input_schema=input_schema(operation),
            output_schema=output_schema(operation),
            annotations=types.ToolAnnotations(**operation.tool_annotations()),
        )
        for operation in registry().values()
    ]


@cache
def _input_schemas():
    return {tool.name: tool.input_schema for tool in tool_definitions()}


def tool_input_schema(name):
    """The input schema of tool `name`, or None (the SDK's get_tool_input_schema hook, 2026-07-28 headers)."""
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
