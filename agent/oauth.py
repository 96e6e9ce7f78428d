"""The OAuth 2.1 authorization server around the agent surface: django-oauth-toolkit, configured, not forked.

What DOT serves as is: the token endpoint (PKCE S256 only, rotating refresh tokens, hashed token storage,
RFC 8707 `resource` on grants and tokens), revocation, and RFC 8414 authorization-server metadata. Its
validator is subclassed in agent.oauth_validator: authorization codes are single-use, a replayed code
revokes every token issued from it, and a failed PKCE check spends the code.
What this module adds, as thin subclasses of DOT's views:

- RFC 9728 protected-resource metadata for each resource we protect (`/mcp`, `/api/v1/pub`), and the
  origin as a whole, each listing every scope;
- the policy in front of open dynamic client registration (RFC 7591/7592): authorization-code grant only,
  https or loopback redirect URIs only, a per-IP rate limit;
- the consent page (agent.consent: DOT's authorize view with a choice of scopes and mailboxes);
- the token endpoint's answer when a replay of the code revoked the tokens of the exchange it raced:
  invalid_grant, not a 500;
- `oauth_purge_stale_registrations`: self-registered clients that never got a token are deleted.

The gates (agent.gates) check the audience: a token bound to a resource that is not ours is refused.
"""

import ipaddress
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model, get_refresh_token_model
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import (
    DynamicClientRegistrationManagementView, DynamicClientRegistrationView,
    OAuthProtectedResourceMetadataView, TokenView,
)

from core import ratelimit
from core.jsonbody import MalformedJson, json_loads_strict

# The paths of the resources we protect; each has its RFC 9728 document at
# /.well-known/oauth-protected-resource<path>.
RESOURCE_PATHS = ("/mcp", "/api/v1/pub")
PROTECTED_RESOURCE_WELL_KNOWN = "/.well-known/oauth-protected-resource"
# Registration metadata grant types we accept: the authorization-code grant (with refresh tokens), nothing else.
ALLOWED_GRANT_TYPES = {"authorization_code", "refresh_token"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def resource_metadata_url(origin, resource_path):
    """The absolute URL of the RFC 9728 document for the resource at `resource_path` of `origin`."""
    return f"{origin.rstrip('/')}{PROTECTED_RESOURCE_WELL_KNOWN}{resource_path}"


def token_allows_origin(access_token, origin):
    """RFC 8707: whether `access_token` may be used at our resources on `origin`.

    A token with no resource indicator is unrestricted (personal tokens); one bound to the origin, to
    `/mcp` or to `/api/v1/pub` of this origin is accepted on both surfaces (a tool and its REST twin are
    one thing); any other audience is refused.
    """
    origin = origin.rstrip("/")
    return any(access_token.allows_audience(f"{origin}{path}/") for path in RESOURCE_PATHS)


def all_scopes():
    return sorted(oauth2_settings.SCOPES_BACKEND_CLASS().get_available_scopes())


class ProtectedResourceMetadataView(OAuthProtectedResourceMetadataView):
    """RFC 9728 metadata; DOT derives the resource from the path suffix (…/mcp → https://host/mcp)."""

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response["Cache-Control"] = "public, max-age=3600"
        return response

    def get_resource_name(self):
        return "QMailing"

    def get_resource_documentation(self):
        """How to use the protected resource: /docs/mcp (connecting an agent, every tool, the errors)."""
        return f"{settings.QMAILING_BASE_URL}/docs/mcp"


# --- Dynamic client registration policy.

def _registration_error(description, status=400, error="invalid_client_metadata", headers=None):
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def redirect_uri_allowed(uri):
    """https with a host, or http on a loopback address (any port; RFC 8252 §7.3); no fragment, no userinfo."""
    if not isinstance(uri, str) or "#" in uri:
        return False
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 — raises ValueError for a bad port
    except ValueError:
        return False
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    host = parts.hostname.lower()
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registration_metadata_problem(body):
    """Why the registration metadata in `body` is refused by our policy, or None (DOT validates the rest)."""
    try:
        data = json_loads_strict(body or b"{}")
    except MalformedJson as exc:
        # Refused here, whatever its shape: DOT's own parser would raise RecursionError (a 500) on deep nesting.
        return f"The registration metadata is not JSON this server accepts: {exc}"
    if not isinstance(data, dict):
        return None
    grant_types = data.get("grant_types", ["authorization_code"])
    if isinstance(grant_types, list) and not set(grant_types) <= ALLOWED_GRANT_TYPES:
        refused = sorted(set(map(str, grant_types)) - ALLOWED_GRANT_TYPES)
        return ("Only the authorization_code grant (with refresh_token) can be registered; "
                f"refused: {', '.join(refused)}.")
    response_types = data.get("response_types", ["code"])
    if isinstance(response_types, list) and any(rt != "code" for rt in response_types):
        return "Only the `code` response type can be registered."
    redirect_uris = data.get("redirect_uris")
    if not isinstance(redirect_uris, list) or not redirect_uris:
        return "redirect_uris is required: https URLs, or http on a loopback address (127.0.0.1, localhost, [::1])."
    bad = [uri for uri in redirect_uris if not redirect_uri_allowed(uri)]
    if bad:
        return (f"Redirect URI(s) {', '.join(map(str, bad))} refused: use https, or http on a loopback address "
                "(127.0.0.1, localhost, [::1]).")
    return None


class RegistrationView(DynamicClientRegistrationView):
    """POST /oauth/register/: open to anonymous clients (MCP clients register themselves), within our policy."""

    def post(self, request, *args, **kwargs):
        limit = settings.QMAILING_DCR_REGISTRATIONS_PER_HOUR
        decision = ratelimit.hit(f"dcr:ip:{ratelimit.client_ip(request)}", limit=limit, window_seconds=3600)
        if not decision.allowed:
            return _registration_error(
                f"At most {limit} client registrations an hour from one address; try again in "
                f"{decision.retry_after} seconds.", status=429, error="too_many_requests",
                headers={"Retry-After": str(decision.retry_after)})
        problem = registration_metadata_problem(request.body)
        if problem:
            return _registration_error(problem)
        return super().post(request, *args, **kwargs)


class RegistrationManagementView(DynamicClientRegistrationManagementView):
    """RFC 7592 management: an update is held to the same policy as a registration."""

    def put(self, request, client_id, *args, **kwargs):
        problem = registration_metadata_problem(request.body)
        if problem:
            auth = self._authenticate_registration_request(request, client_id)
            if isinstance(auth, HttpResponse):
                return auth  # the 401 first: say nothing about metadata to an unauthenticated caller
            return _registration_error(problem)
        return super().put(request, client_id, *args, **kwargs)


class SingleUseCodeTokenView(TokenView):
    """POST /oauth/token/: DOT's view. After issuing, DOT reads the new access token back (for its
    app_authorized signal); a replay of the code in the meantime has revoked it, so that exchange gets
    invalid_grant, not a 500."""

    def authorization_flow_token_response(self, request, *args, **kwargs):
        try:
            return super().authorization_flow_token_response(request, *args, **kwargs)
        except get_access_token_model().DoesNotExist:
            response = JsonResponse({"error": "invalid_grant"}, status=400)
            response["Cache-Control"] = "no-store"
            return response


def oauth_purge_stale_registrations(*, days=None, now=None):
    """Delete self-registered (DCR) clients older than `days` that never got an access or refresh token.

    Their own registration access token does not count as use. Returns how many were deleted.
    """
    days = settings.QMAILING_DCR_STALE_DAYS if days is None else days
    cutoff = (now or timezone.now()) - timedelta(days=days)
    Application = get_application_model()
    AccessToken = get_access_token_model()
    RefreshToken = get_refresh_token_model()
    used = Exists(AccessToken.objects.filter(application=OuterRef("pk"))
                  .filter(~Q(scope=oauth2_settings.DCR_REGISTRATION_SCOPE)))
    refreshed = Exists(RefreshToken.objects.filter(application=OuterRef("pk")))
    stale = (Application.objects.filter(registration_source=Application.RegistrationSource.DCR, created__lt=cutoff)
             .annotate(used=used, refreshed=refreshed).filter(used=False, refreshed=False))
    deleted = 0
    for application in stale.iterator():
        application.delete()  # cascades to its registration token and any pending grant
        deleted += 1
    return deleted
