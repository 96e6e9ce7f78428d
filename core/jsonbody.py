"""JSON from outside, parsed with every cost bounded: the one reader of request bodies (REST and MCP).

    value = json_loads_strict(raw)   # or MalformedJson, whose message says what is wrong

The standard library's parser recurses once per nesting level and raises RecursionError (not ValueError)
past about a thousand; it takes NaN and Infinity, turns 1e999 into inf, and keeps lone surrogates that
no database or encoder will take later. Each of those would surface as a 500 far from the request. Here
they are one refusal at the door: the body is UTF-8, at most MAX_DEPTH levels deep, numbers are finite
(integers up to Python's own 4,300 digits), strings are valid Unicode. Size is bounded by the caller
before this runs (QMAILING_API_MAX_BODY_BYTES).
"""

import json
import math

MAX_DEPTH = 64  # no operation's input nests more than a few levels; real clients send under ten


class MalformedJson(ValueError):
    """The body is not JSON we accept; the message is a sentence for the caller."""


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJson(f"The number {text[:40]} is out of range.")
    return value


def _no_constant(name):
    raise MalformedJson(f"{name} is not a JSON number.")


_decoder = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)


def json_loads_strict(raw):
    """The value of the JSON text `raw` (bytes or str), or MalformedJson."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedJson("The body is not UTF-8 text.") from None
    try:
        value = _decoder.decode(raw)
    except MalformedJson:
        raise
    except RecursionError:
        raise MalformedJson(f"The JSON nests deeper than {MAX_DEPTH} levels.") from None
    except ValueError as exc:  # JSONDecodeError, and int() past sys.get_int_max_str_digits()
        raise MalformedJson(f"The body is not valid JSON: {exc}") from None
    _check_shape(value)
    return value


def _check_shape(value):
    """Depth and string validity, walked without recursion (the value may nest a thousand levels)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise MalformedJson(f"The JSON nests deeper than {MAX_DEPTH} levels.")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedJson("A string in the JSON holds an unpaired surrogate (\\ud800-\\udfff).") from None


class StrictJsonBodyMiddleware:
    """Every JSON body Django reads outside the API and OAuth (which read theirs with json_loads_strict and answer
    in their own formats) is checked the same way first: third-party views, such as anymail's ESP webhooks,
    parse before they authenticate, and a deep or non-finite body would be a 500 there. A refused body gets a
    400 problem (malformed_request)."""

    SKIP_PREFIXES = ("/api/", "/oauth/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (request.method in ("POST", "PUT", "PATCH") and request.content_type == "application/json"
                and not request.path.startswith(self.SKIP_PREFIXES)):
            try:
                json_loads_strict(request.body)
            except MalformedJson as exc:
                return _malformed(request, exc)
        return self.get_response(request)


def _malformed(request, exc):
    from django.http import JsonResponse

    from core.errors import Invalid, problem_details

    error = Invalid(f"The request body is not JSON this server accepts: {exc}", field="body", code="malformed_request")
    return JsonResponse(problem_details(error, instance=request.path), status=400,
                        content_type="application/problem+json")
