from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from domains.forms import DomainAddForm
from domains.selectors import access_domain, domain_records, domain_zone_file
from domains.services import domain_add, domain_delete, domain_verify
from qmailing.errors import AppError
from qmailing.forms import add_app_error, app_error_message
from qmailing.web import account_view, render_form


@account_view
@require_http_methods(["GET", "POST"])
def domain_add_view(request, account):
    form = DomainAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            domain = domain_add(account=account, name=form.cleaned_data["name"])
        except AppError as exc:
            add_app_error(form, exc)
        else:
            messages.success(request, f"{domain.unicode_name} added. Publish the records below, then check DNS.")
            return redirect("domains:detail", domain_id=domain.id)
    return render_form(request, "domains/add.html", {"form": form, "account": account})


@account_view
def domain_detail_view(request, account, domain_id):
    domain = access_domain(account=account, domain_id=domain_id)
    records = domain_records(domain=domain)
    return render(request, "domains/detail.html", {"domain": domain, "records": records,
                                                   "zone_file": domain_zone_file(domain=domain, records=records)})


@account_view
@require_POST
def domain_verify_view(request, account, domain_id):
    domain = domain_verify(domain=access_domain(account=account, domain_id=domain_id))
    if domain.is_verified:
        messages.success(request, f"{domain.unicode_name} is verified: you can create mailboxes on it.")
    else:
        messages.warning(request, "Some required records are not in place yet; see each record's state below.")
    return redirect("domains:detail", domain_id=domain.id)


@account_view
@require_POST
def domain_delete_view(request, account, domain_id):
    domain = access_domain(account=account, domain_id=domain_id)
    try:
        domain_delete(domain=domain)
    except AppError as exc:
        messages.error(request, app_error_message(exc))
        return redirect("domains:detail", domain_id=domain.id)
    messages.success(request, f"{domain.unicode_name} removed.")
    return redirect("dashboard")
