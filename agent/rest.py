"""The REST API under /api/v1/pub/, generated from the operation registry on DRF.

One APIView class per path, one handler per (method, operation). The handler only translates HTTP:
it authenticates and meters the call (agent.gates), hands the operation and its raw arguments (path
parameters, plus the query string for GET/DELETE or the JSON body otherwise) to agent.pipeline, and
answers the Outcome. Errors of every kind leave through `exception_handler` as RFC 9457 problem
details; nothing under /api/ answers HTML.
"""

import re
import time
from collections import defaultdict
from typing import get_args, get_origin

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import APIView

from agent import gates, pipeline
from core.errors import (
    AppError, Forbidden, Invalid, MethodNotAllowed, NotAcceptable, NotFound, Unauthenticated, UnsupportedMediaType,
    problem_details,
)
from core.jsonbody import MalformedJson, json_loads_strict
from agent.openapi import RegistrySchema, openapi_urlpatterns
from agent.operations import registry

PROBLEM_CONTENT_TYPE = "application/problem+json"
BODY_METHODS = ("POST", "PATCH", "PUT")


def _takes_list(annotation):
    """Whether a field's type is a list (or an optional list)."""
    if get_origin(annotation) is list:
        return True
    return any(get_origin(arg) is list for arg in get_args(annotation))


def _json_body(request):
    """The JSON body ({} when empty), read with the API's own bound, QMAILING_API_MAX_BODY_BYTES.

    Only the API takes bodies that large (attachments travel base64-encoded in JSON), so it reads the
    stream itself instead of raising Django's DATA_UPLOAD_MAX_MEMORY_SIZE for every view; the token
    has been checked before this runs.
    """
    http, limit = request._request, settings.QMAILING_API_MAX_BODY_BYTES
    try:
        declared = int(http.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise RequestDataTooBig("Request body exceeded QMAILING_API_MAX_BODY_BYTES.")
    raw = http.read(limit + 1)
    if len(raw) > limit:
        raise RequestDataTooBig("Request body exceeded QMAILING_API_MAX_BODY_BYTES.")
    if not raw:
        return {}
    if (request.content_type or "").split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("Send the request body as JSON with Content-Type: application/json.")
    try:
        return json_loads_strict(raw)
    except MalformedJson as exc:
        raise Invalid(f"The request body is not JSON this API accepts: {exc}", field="body",
                      code="malformed_request") from None


def operation_arguments(operation, request, path_args):
    """The raw arguments of one call: path parameters plus the query string or the JSON body (validated by
    agent.pipeline, which calls this once the call passed the gates)."""
    if operation.method in BODY_METHODS:
        body = _json_body(request)
        if not isinstance(body, dict):
            raise Invalid("The request body must be a JSON object.", field="body")
        given = dict(body)
    else:
        fields = operation.input.model_fields
        # A list argument may come as one value (?types=a) or repeated (?types=a&types=b).
        given = {key: values if len(values) > 1 or (key in fields and _takes_list(fields[key].annotation)) else values[0]
                 for key, values in request.query_params.lists()}
    for name, value in path_args.items():
        if name in given:
            raise Invalid(f"{name} is part of the path; do not send it again.", field=name)
        given[name] = value
    return given


def _perform(operation):
    def handle(self, request, **path_args):
        headers = {}  # X-RateLimit-*, on the answer whatever it is
        refusal = None
        try:
            actor = gates.admit(authorization=request.headers.get("Authorization"), operation=None, headers=headers,
                                origin=request.build_absolute_uri("/"), resource_path="/api/v1/pub")
        except AppError as error:
            if getattr(error, "actor", None) is None:
                raise  # no valid token: no account to log the call against
            actor, refusal = error.actor, error  # throttled (429): the pipeline logs it
        # A body is JSON (typed, validated strictly); path parameters and query strings are text.
        outcome = pipeline.invoke(operation, actor, lambda: operation_arguments(operation, request, path_args),
                                  source=pipeline.REST, text=operation.method not in BODY_METHODS,
                                  refusal=refusal, started=self.started, headers=headers)
        if outcome.error is not None:
            outcome.error.headers = {**headers, **outcome.error.headers}
            raise outcome.error
        return Response(outcome.body, status=outcome.status, headers=headers)

    handle.__name__ = operation.method.lower()
    handle.__doc__ = operation.description
    return handle


class OperationView(APIView):
    """Base of the generated views: no DRF authentication or permissions (the gates do both)."""

    authentication_classes = ()
    permission_classes = ()
    metadata_class = None  # no ungated OPTIONS answer; the OpenAPI document describes the API
    schema = RegistrySchema()  # the OpenAPI operations come from the registry entry (agent.openapi)
    operations = {}  # method -> Operation, set per generated class

    def dispatch(self, request, *args, **kwargs):
        self.started = time.perf_counter()  # the logged duration counts from here (agent.pipeline)
        return super().dispatch(request, *args, **kwargs)


def _view_for(path, operations):
    methods = {op.method: op for op in operations}
    attrs = {"operations": methods, "__doc__": f"/{path}: " + ", ".join(op.name for op in operations)}
    for method, operation in methods.items():
        attrs[method.lower()] = _perform(operation)
    name = "".join(part.title() for part in operations[0].name.split("_")) + "View"
    return type(name, (OperationView,), attrs)


def _route_regex(path):
    pattern = re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", path)
    return rf"^api/v1/pub/{pattern}/?$"


def api_urlpatterns():
    """The OpenAPI document and docs page, one route per registry path, then a problem+json 404 for the rest of /api/."""
    by_path = defaultdict(list)
    for operation in registry().values():
        by_path[operation.path].append(operation)
    # /api/v1/pub/openapi.json|.yaml and /api/v1/pub/docs/ (no token needed) first: no registry path shadows them.
    patterns = openapi_urlpatterns()
    patterns += [re_path(_route_regex(path), _view_for(path, ops).as_view(), name=ops[0].name)
                 for path, ops in sorted(by_path.items())]
    patterns.append(re_path(r"^api(/.*)?$", api_not_found))
    return patterns


def problem_response(error, *, instance, response_class=Response):
    body = problem_details(error, instance=instance)
    headers = dict(getattr(error, "headers", {}) or {})
    if response_class is Response:
        return Response(body, status=error.status, content_type=PROBLEM_CONTENT_TYPE, headers=headers)
    response = JsonResponse(body, status=error.status, content_type=PROBLEM_CONTENT_TYPE)
    for key, value in headers.items():
        response[key] = value
    return response


@csrf_exempt  # a POST to a wrong path is a JSON 404, not the CSRF middleware's HTML 403
def api_not_found(request, *args, **kwargs):
    error = NotFound(f"There is no API endpoint at {request.path}. The API lives under /api/v1/pub/.",
                     code="endpoint_not_found")
    return problem_response(error, instance=request.path, response_class=JsonResponse)


def as_app_error(exc, method=""):
    """The AppError for any exception raised inside an API view: DRF's own ones here, the rest as the
    pipeline maps them (agent.pipeline.app_error)."""
    if isinstance(exc, drf.NotFound):
        return NotFound("No such object in your account.")
    if isinstance(exc, drf.PermissionDenied):
        return Forbidden("This action is not allowed for your account.")
    if isinstance(exc, drf.MethodNotAllowed):
        return MethodNotAllowed(f"This endpoint does not accept {method or 'this method'}; "
                                "the Allow header lists the methods it takes.")
    if isinstance(exc, drf.ParseError):
        return Invalid(f"The request body is not valid JSON: {exc.detail}", field="body", code="malformed_request")
    if isinstance(exc, drf.UnsupportedMediaType):
        return UnsupportedMediaType("Send the request body as JSON with Content-Type: application/json.")
    if isinstance(exc, drf.NotAcceptable):
        return NotAcceptable("This API answers application/json (and application/problem+json for errors).")
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        return Unauthenticated("Send your token as `Authorization: Bearer qm_live_…`.")
    if isinstance(exc, drf.APIException):
        error = AppError(str(exc.detail))
        error.status = exc.status_code
        return error
    return pipeline.app_error(exc, source=pipeline.REST)


def exception_handler(exc, context):
    """REST_FRAMEWORK's EXCEPTION_HANDLER: every error becomes application/problem+json."""
    request = context.get("request")
    if request is None:
        return problem_response(as_app_error(exc), instance="")
    return problem_response(as_app_error(exc, method=request.method), instance=request.path)
