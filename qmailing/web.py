"""The project's page chrome: the favicon and the product's own 404 page."""

from pathlib import Path

from django.http import HttpResponse
from django.shortcuts import render

FAVICON = Path(__file__).resolve().parent / "static" / "qmailing" / "favicon.svg"


def favicon(request):
    """/favicon.ico, which browsers ask for on every site: the product's icon (an SVG, which they all accept)."""
    response = HttpResponse(FAVICON.read_bytes(), content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


NOT_FOUND_DETAIL = "There is no page at this address. Check the link, or start again from the overview."
# Paths that answer in JSON (problem details) or speak a protocol: their 404s are left exactly as they are.
MACHINE_PREFIXES = ("/api/", "/mcp", "/oauth/", "/.well-known/", "/anymail/", "/static/", "/dl/")


class NotFoundPageMiddleware:
    """Serve the product's own not_found.html for every page 404, with DEBUG on as well.

    Django's debug 404 page lists every URL pattern; this one never does. A URL that matched nothing (no
    resolver_match) or a view that raised Http404 gets the product page; 404s a view rendered itself, and
    every machine-facing path (MACHINE_PREFIXES, e.g. /api/'s JSON 404s), pass through untouched. Sits last
    in MIDDLEWARE, so every other middleware sees the replaced response; CommonMiddleware's APPEND_SLASH
    redirect still happens, because a path that would resolve with a slash is left alone.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 404 and request.resolver_match is None and self._is_page(request):
            from django.middleware.common import CommonMiddleware

            if not CommonMiddleware(self.get_response).should_redirect_with_slash(request):
                return self._page(request)
        return response

    def process_exception(self, request, exception):
        from django.http import Http404

        if isinstance(exception, Http404) and self._is_page(request):
            return self._page(request)
        return None

    @staticmethod
    def _is_page(request):
        return not request.path.startswith(MACHINE_PREFIXES)

    @staticmethod
    def _page(request):
        return render(request, "not_found.html", {"detail": NOT_FOUND_DETAIL}, status=404)
