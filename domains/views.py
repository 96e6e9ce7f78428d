from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from domains.forms import DomainAddForm
from domains.models import DnsRecord
from domains.names import domain_to_unicode, normalize_domain
from domains.selectors import access_domain, domain_records, domain_zone_file
from domains.services import domain_add, domain_delete, domain_verify
from core.errors import AppError
from accounts.web import account_view
from core.web import form_action, render_form

# The domain page lists this many of the domain's mailboxes; the Overview lists them all.
MAILBOXES_SHOWN = 100


def _in_unicode(exc, ascii_name):
    """The service's error with the domain's punycode (xn--…) name written as the person typed it."""
    if not ascii_name:
        return exc
    unicode_name = domain_to_unicode(ascii_name)
    if unicode_name == ascii_name:
        return exc
    exc.detail = str(exc.detail).replace(ascii_name, unicode_name)
    errors = exc.extra.get("errors")
    if errors:
        exc.extra["errors"] = {field: [str(message).replace(ascii_name, unicode_name) for message in messages_]
                               for field, messages_ in errors.items()}
    return exc


def _ascii_name(raw):
    try:
        return normalize_domain(raw)
    except AppError:
        return None  # the service explains what is wrong with it, in the name as typed


@account_view
@require_http_methods(["GET", "POST"])
def domain_add_view(request, account):
    form = DomainAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        name = form.cleaned_data["name"]
        done = form_action(request, lambda: domain_add(account=account, name=name), form=form,
                           explain=lambda exc: _in_unicode(exc, _ascii_name(name)),
                           success=lambda domain: f"{domain.unicode_name} added. Publish the records below, "
                                                  "then check DNS.",
                           then=lambda domain: redirect("domains:detail", domain_id=domain.id))
        if done is not None:
            return done
    return render_form(request, "domains/add.html", {"form": form, "account": account})


@account_view
def domain_detail_view(request, account, domain_id):
    domain = access_domain(account=account, domain_id=domain_id)
    records = domain_records(domain=domain)
    mailboxes = (domain.mailboxes.filter(account=account).select_related("domain").prefetch_related("groups")
                 .order_by("local_part"))  # the same rows and order as mailboxes.selectors.mailbox_list
    shown = list(mailboxes[:MAILBOXES_SHOWN + 1])
    more = len(shown) > MAILBOXES_SHOWN
    context = {"domain": domain, "records": records, "zone_file": domain_zone_file(domain=domain, records=records),
               "mailboxes": shown[:MAILBOXES_SHOWN], "mailbox_count": mailboxes.count() if more else len(shown),
               "is_idn": domain.unicode_name != domain.name}
    return render(request, "domains/detail.html", context)


def _names(records):
    names = [record.get_kind_display() for record in records]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@account_view
@require_POST
def domain_verify_view(request, account, domain_id):
    domain = domain_verify(domain=access_domain(account=account, domain_id=domain_id))
    if domain.is_verified:
        messages.success(request, f"{domain.unicode_name} is verified: you can create mailboxes on it.")
    else:
        failing = [record for record in domain_records(domain=domain)
                   if record.required and record.state != DnsRecord.State.OK]
        if failing:
            verb = "is" if len(failing) == 1 else "are"
            messages.warning(request, f"DNS checked for {domain.unicode_name}: {_names(failing)} {verb} not in place "
                                      "yet. See each record's state and how to fix it below.")
        else:
            messages.warning(request, f"DNS checked for {domain.unicode_name}; see the ownership record below.")
    return redirect("domains:detail", domain_id=domain.id)


@account_view
@require_POST
def domain_delete_view(request, account, domain_id):
    domain = access_domain(account=account, domain_id=domain_id)
    return form_action(request, lambda: domain_delete(domain=domain), explain=lambda exc: _in_unicode(exc, domain.name),
                       success=lambda _: f"{domain.unicode_name} removed.", then="dashboard",
                       on_error=redirect("domains:detail", domain_id=domain.id))
