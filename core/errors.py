"""The one application error family.

Services raise these; one DRF exception handler and one MCP adapter turn them into RFC 9457 problem
details (`problem_details`). Nothing else builds an error body.
"""

from django.conf import settings


class AppError(Exception):
    """Base of every error a user may see. `code` is stable snake_case for branching."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail, *, code=None, **extra):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.extra = extra
        # HTTP headers that belong with this error (WWW-Authenticate, Retry-After, X-RateLimit-*); the
        # problem body never carries them. Gates may add to it before raising.
        self.headers = {}

    def problem(self, instance=""):
        return problem_details(self, instance=instance)


class Invalid(AppError):
    """Input that cannot be accepted. `errors` maps each bad field to its messages."""

    status = 400
    code = "validation_error"
    title = "Invalid input"

    def __init__(self, detail, *, field=None, errors=None, code=None, **extra):
        if errors is None:
            errors = {field: [detail]} if field else {}
        super().__init__(detail, code=code, errors=errors, **extra)

    @property
    def errors(self):
        return self.extra["errors"]


class Unauthenticated(AppError):
    """No usable token. `bearer_error` is RFC 6750's error code ("invalid_token") when a token was presented."""

    status = 401
    code = "unauthenticated"
    title = "Authentication required"

    def __init__(self, detail, *, bearer_error=None, **extra):
        super().__init__(detail, **extra)
        challenge = 'Bearer realm="QMailing"'
        if bearer_error:
            challenge += f', error="{bearer_error}"'
        self.headers["WWW-Authenticate"] = challenge


class PlanRequired(AppError):
    status = 402
    code = "plan_required"
    title = "Upgrade required"

    def __init__(self, detail, *, required_plan, **extra):
        super().__init__(detail, requiredPlan=required_plan, upgradeUrl=settings.QMAILING_UPGRADE_URL, **extra)


class LimitReached(AppError):
    """A plan limit (domains, mailboxes, storage, sends per day) is used up."""

    status = 402
    code = "plan_limit_reached"
    title = "Plan limit reached"

    def __init__(self, detail, *, limit, **extra):
        super().__init__(detail, limit=limit, upgradeUrl=settings.QMAILING_UPGRADE_URL, **extra)


class ScopeMissing(AppError):
    status = 403
    code = "insufficient_scope"
    title = "Missing scope"

    def __init__(self, detail, *, required_scopes, **extra):
        super().__init__(detail, requiredScopes=list(required_scopes), **extra)


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class TokenLimited(AppError):
    """The operation acts on the whole account (domains, webhooks, new mailboxes) and the token is limited to
    some mailboxes: only a token for every mailbox may call it."""

    status = 403
    code = "token_limited_to_mailboxes"
    title = "Token limited to some mailboxes"


class NotFound(AppError):
    """Also the answer for an object that exists but belongs to someone else."""

    status = 404
    code = "not_found"
    title = "Not found"


class MethodNotAllowed(AppError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class NotAcceptable(AppError):
    status = 406
    code = "not_acceptable"
    title = "Not acceptable"


class Conflict(AppError):
    status = 409
    code = "conflict"
    title = "Conflict"


class TooLarge(AppError):
    status = 413
    code = "too_large"
    title = "Too large"


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class RateLimited(AppError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail, *, retry_after, **extra):
        super().__init__(detail, retryAfter=int(retry_after), **extra)
        self.headers["Retry-After"] = str(int(retry_after))


class ServerError(AppError):
    """What a caller sees when something broke on our side: never a traceback."""

    status = 500
    code = "server_error"
    title = "Server error"


def error_type_url(code):
    return f"{settings.QMAILING_ERROR_DOCS_URL}#{code}"


def problem_details(error, *, instance=""):
    """The RFC 9457 body for an AppError: type, title, status, detail, code, instance + extensions."""
    body = {
        "type": error_type_url(error.code),
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
        "instance": instance,
    }
    body.update(error.extra)
    return body
