"""The MCP tools, generated from the operation registry (agent.operations): one tool per operation.

A tool is its operation as MCP sees it: the same name, title and description, the input model's JSON
Schema (unknown arguments refused), the output model's schema, the annotations. A call runs what the
REST twin runs (agent.rest): the plan and scope gates, input validation, `operation.run`, the request
log, and returns the same JSON object as structured content. Authentication and metering happened on
the HTTP request in front of the SDK (agent.mcp.http), which hands over the Actor and, when the daily
cap refused the call, that refusal.

Every failure a user can act on is a tool result with isError: the problem object (RFC 9457, the same
body REST answers) as structured content and its `detail` as text. Nothing else builds an error body.
"""

import json
import logging
import time
from functools import cache

import mcp_types as types
from channels.db import database_sync_to_async
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from accounts.request_log import request_log_write
from agent import gates
from agent.rest import as_app_error, invalid_from_pydantic, json_integers
from core.errors import AppError, problem_details
from agent.operations import registry

logger = logging.getLogger(__name__)

# The keys agent.mcp.http leaves in the ASGI scope of an authenticated MCP request.
SCOPE_ACTOR = "qmailing.mcp.actor"
SCOPE_REFUSAL = "qmailing.mcp.refusal"  # the AppError metering raised for this tools/call (daily cap)
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


def success_result(body):
    return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(body))],
                                structured_content=body)


def error_result(error, *, instance):
    problem = problem_details(error, instance=instance)
    return types.CallToolResult(content=[types.TextContent(type="text", text=problem["detail"])],
                                structured_content=problem, is_error=True)


def validate_arguments(operation, arguments):
    """The input model for `arguments`, typed as the input schema says (JSON: 0 is not false, "5" is not 5)."""
    try:
        return operation.input.model_validate_json(json.dumps(json_integers(arguments)), strict=True)
    except ValidationError as error:
        raise invalid_from_pydantic(error)


def run_tool(*, operation, actor, arguments, refusal=None, started=None):
    """One tools/call, synchronously (ORM): the remaining gates, validation, the operation, the request log.

    Returns the CallToolResult. `refusal` is an AppError the transport's metering already raised for
    this call (the daily cap); `started` is when the HTTP request arrived, for the logged duration.
    """
    started = time.perf_counter() if started is None else started
    try:
        args = admit_call(operation=operation, actor=actor, arguments=arguments, refusal=refusal)
        body = operation.run(actor=actor, args=args).model_dump(mode="json")
        outcome = operation.success_status, success_result(body)
    except Exception as exc:  # noqa: BLE001 — every failure becomes a problem; as_app_error logs the unexpected
        outcome = failure(operation, exc)
    return finish_call(operation=operation, actor=actor, outcome=outcome, started=started)


def admit_call(*, operation, actor, arguments, refusal=None):
    """The gates after metering (plan, scope) and argument validation: the input model, or the AppError."""
    if refusal is not None:
        raise refusal
    gates.authorize(actor, operation)
    return validate_arguments(operation, arguments)


def failure(operation, exc):
    """(status, isError result) for whatever a call raised."""
    error = exc if isinstance(exc, AppError) else as_app_error(exc)
    return error.status, error_result(error, instance=instance_for(operation))


def finish_call(*, operation, actor, outcome, started):
    """Write the call's request-log row (sync, ORM) and return its result; `outcome` is (status, result)."""
    status, result = outcome
    try:
        request_log_write(account=actor.account, token_id=actor.token.pk, operation=operation.name, status=status,
                          duration_ms=(time.perf_counter() - started) * 1000)
    except Exception:  # the answer is decided; a lost log row must not turn it into an error
        logger.exception("Could not write the request log row")
    return result


# Each step that touches the ORM runs in a worker thread with its own connection (as run_tool does); the
# async handler in between runs on the event loop, so a long wait occupies no thread.
_admit_call = database_sync_to_async(admit_call, thread_sensitive=False)
_failure = database_sync_to_async(failure, thread_sensitive=False)  # as_app_error may touch error reporting
_finish_call = database_sync_to_async(finish_call, thread_sensitive=False)


async def run_tool_async(*, operation, actor, arguments, refusal=None, started=None):
    """run_tool for an operation with `handler_async`: gates and validation sync, the handler awaited, the log sync.

    The same result object as run_tool (and the REST twin) for the same call.
    """
    started = time.perf_counter() if started is None else started
    try:
        args = await _admit_call(operation=operation, actor=actor, arguments=arguments, refusal=refusal)
        body = (await operation.run_async(actor=actor, args=args)).model_dump(mode="json")
        outcome = operation.success_status, success_result(body)
    except Exception as exc:  # noqa: BLE001 — as in run_tool
        outcome = await _failure(operation, exc)
    return await _finish_call(operation=operation, actor=actor, outcome=outcome, started=started)


def operation_for(name):
    """The operation behind tool `name`; an unknown name is a protocol error (JSON-RPC invalid params)."""
    operation = registry().get(name)
    if operation is None:
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {name}. tools/list lists the tools.")
    return operation
