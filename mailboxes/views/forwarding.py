"""The page behind a forwarding confirmation link: public (the address's owner may have no account here)."""

from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from mailboxes.outbound.confirmation import forwarding_confirm, forwarding_confirmation_get
from core.errors import NotFound


@require_http_methods(["GET", "POST"])
def forwarding_confirm_view(request, token):
    """GET shows what is asked and a button; only the POST confirms (link scanners only GET)."""
    try:
        confirmation = (forwarding_confirm if request.method == "POST" else forwarding_confirmation_get)(token=token)
    except NotFound as exc:
        return render(request, "not_found.html", {"detail": exc.detail}, status=404)
    return render(request, "mailboxes/forwarding_confirm.html", {"confirmation": confirmation})
