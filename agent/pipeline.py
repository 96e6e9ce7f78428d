"""The one call pipeline: what every agent call runs once its transport has authenticated and throttled it.

    outcome = invoke(operation, actor, raw_arguments, source=REST, started=started)

REST views (agent.rest), MCP tools (agent.mcp.tools) and the MCP resource (agent.mcp.resources) only
translate their transport around it. In order, for one call:

1. a refusal the transport's throttle already raised for this call, if any;
2. the plan gate, then the scope gate (agent.gates.authorize);
3. the arguments, read only now (a REST body is not read for a call the gates refuse) and validated once:
   typed JSON strictly (0 is not false, "5" is not 5), text (path and query string) laxly;
4. the daily cap (agent.gates.charge_daily), charged only now: a call refused above never uses up the day;
5. the operation, its result shaped by the output model and dumped as JSON;
6. any failure mapped to the one error family (core.errors), the unexpected ones logged as a 500;
7. the request-log row, handed to the request log's buffer here and nowhere else.

It returns an Outcome (status, body or error) and never raises: the transport decides how a failure
travels (a problem+json answer, an isError tool result, a JSON-RPC error).
"""

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from pydantic import ValidationError

from accounts.request_log import request_log_enqueue
from agent import gates
from core.errors import AppError, Forbidden, Invalid, NotFound, ServerError, TooLarge

logger = logging.getLogger(__name__)

# Where a call came from (the `source` of invoke), for the log of an unexpected failure.
REST, MCP_TOOL, MCP_RESOURCE = "rest", "mcp-tool", "mcp-resource"


@dataclass(frozen=True)
class Outcome:
    """What one call came to: its HTTP-like status and either the JSON body of its result or the AppError."""

    status: int
    body: object = None
    error: AppError | None = None


# An Invalid names at most this many fields, each name cut to FIELD_NAME_CHARS: unknown arguments are named
# by the caller, and the problem goes back whole (an MCP error result's text too), so it stays small.
FIELDS_LISTED = 20
FIELD_NAME_CHARS = 100


def invalid_from_pydantic(error):
    """An Invalid listing each bad field (dotted paths for nested ones) with its messages, the first
    FIELDS_LISTED of them."""
    errors = defaultdict(list)
    more = set()
    for item in error.errors(include_url=False):
        field = (".".join(str(part) for part in item["loc"]) or "body")[:FIELD_NAME_CHARS]
        if field in errors or len(errors) < FIELDS_LISTED:
            errors[field].append(item["msg"])
        else:
            more.add(field)
    fields = ", ".join(errors) + (f" and {len(more)} more" if more else "")
    return Invalid(f"Some input is not valid ({fields}). Fix each field listed in errors and send again.",
                   errors=dict(errors))


def json_integers(value):
    """`value` with every integral float (13.0) as an int: JSON Schema's "integer" admits 13.0, pydantic's
    strict int does not, and a strict float accepts an int, so this changes no answer but that one."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: json_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_integers(item) for item in value]
    return value


def validate(operation, arguments, *, text=False):
    """The operation's input model for `arguments`, or Invalid.

    JSON arguments are typed, as the schemas say, and validated strictly. `text` arguments (path
    parameters and query strings, which arrive as strings) are validated laxly, so "5" may be 5 there.
    """
    try:
        if text:
            return operation.input.model_validate(arguments)
        return operation.input.model_validate_json(json.dumps(json_integers(arguments), default=str), strict=True)
    except ValidationError as error:
        raise invalid_from_pydantic(error) from None


def app_error(exc, *, source=REST):
    """The AppError for anything a call raised; an unexpected exception is logged and becomes a generic 500."""
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, Http404):
        return NotFound("No such object in your account.")
    if isinstance(exc, PermissionDenied):
        return Forbidden("This action is not allowed for your account.")
    if isinstance(exc, RequestDataTooBig):
        return TooLarge("The request body is above the size the API accepts (attachments: 25 MB in total per "
                        "message, sent base64-encoded).", limit=settings.QMAILING_API_MAX_BODY_BYTES)
    logger.error("Unhandled error in an API call (%s)", source, exc_info=exc)
    return ServerError("Something went wrong on our side. Try again; if it keeps happening, contact support.")


def record(*, actor, name, status, started):
    """Log one call (the only place that does): `name` is the operation or MCP method. The row is buffered and
    written in a batch within a second (accounts.request_log), off the call's path.

    The answer is already decided, so a lost row is logged and never turns it into an error.
    """
    try:
        request_log_enqueue(account=actor.account, token_id=actor.token.pk, operation=name, status=status,
                          duration_ms=(time.perf_counter() - started) * 1000)
    except Exception:
        logger.exception("Could not write the request log row")


def admit(operation, actor, raw_arguments, *, text=False, refusal=None, gate=None, headers=None):
    """Steps 1 to 4: the throttle's refusal, the plan and scope gates (of `gate`, by default the operation
    itself), the validated arguments, then the daily cap. `raw_arguments` is a dict or a function that reads
    it; `headers` (the transport's, if it answers with any) receives the daily budget's X-RateLimit-*."""
    if refusal is not None:
        raise refusal
    gates.authorize(actor, gate or operation)
    args = None
    if operation is not None:
        args = validate(operation, raw_arguments() if callable(raw_arguments) else raw_arguments, text=text)
    gates.charge_daily(actor, headers={} if headers is None else headers)
    return args


def failed(exc, *, source):
    error = app_error(exc, source=source)
    return Outcome(status=error.status, error=error)


def invoke(operation, actor, raw_arguments, *, source, text=False, refusal=None, started=None, headers=None):
    """One call of `operation` by `actor`, synchronously (ORM): gates, validation, the operation, errors, log.

    `refusal` is an AppError the transport's throttle raised for this call; `started` is
    time.perf_counter() when the transport received it (the logged duration counts from there); `headers`
    as for admit.
    """
    started = time.perf_counter() if started is None else started
    try:
        args = admit(operation, actor, raw_arguments, text=text, refusal=refusal, headers=headers)
        body = operation.run(actor=actor, args=args).model_dump(mode="json")
        outcome = Outcome(status=operation.success_status, body=body)
    except Exception as exc:  # noqa: BLE001 - every failure is an AppError; app_error logs the unexpected
        outcome = failed(exc, source=source)
    record(actor=actor, name=operation.name, status=outcome.status, started=started)
    return outcome


# Each step that touches the ORM runs in a worker thread with its own connection (as invoke does whole); the
# async handler in between runs on the event loop, so a long wait occupies no thread.
_admit = database_sync_to_async(admit, thread_sensitive=False)
_failed = database_sync_to_async(failed, thread_sensitive=False)  # app_error may touch error reporting
_record = database_sync_to_async(record, thread_sensitive=False)


async def invoke_async(operation, actor, raw_arguments, *, source, text=False, refusal=None, started=None,
                       headers=None):
    """invoke for an operation with `handler_async` (the long-poll), from the event loop: the gates,
    validation, error mapping and log in threads, the handler awaited. The same Outcome as invoke."""
    started = time.perf_counter() if started is None else started
    try:
        args = await _admit(operation, actor, raw_arguments, text=text, refusal=refusal, headers=headers)
        body = (await operation.run_async(actor=actor, args=args)).model_dump(mode="json")
        outcome = Outcome(status=operation.success_status, body=body)
    except Exception as exc:  # noqa: BLE001 - as in invoke
        outcome = await _failed(exc, source=source)
    await _record(actor=actor, name=operation.name, status=outcome.status, started=started)
    return outcome


def read(actor, *, name, gate, work, source, refusal=None, started=None):
    """A call that is not an operation (the MCP resource read): the gates of the operation `gate`, then
    `work()` (its body), errors and the request-log row under `name`, as invoke does for an operation."""
    started = time.perf_counter() if started is None else started
    try:
        admit(None, actor, None, refusal=refusal, gate=gate)
        outcome = Outcome(status=200, body=work())
    except Exception as exc:  # noqa: BLE001 - as in invoke
        outcome = failed(exc, source=source)
    record(actor=actor, name=name, status=outcome.status, started=started)
    return outcome
