from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from mailboxes.forms import GroupForm, MailboxCreateForm, MailboxUpdateForm
from mailboxes.models import Mailbox
from mailboxes.outbound.confirmation import forwarding_status
from mailboxes.selectors import access_group, access_mailbox, group_list
from mailboxes.services import (
    group_create, group_delete, group_update, mailbox_create, mailbox_delete, mailbox_set_status, mailbox_update,
)
from accounts.web import account_view
from core.web import form_action, render_form

@account_view
@require_http_methods(["GET", "POST"])
def mailbox_create_view(request, account):
    form = MailboxCreateForm(request.POST or None, account=account, initial={"forward_keep_copy": True},
                             domain_id=request.GET.get("domain"))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        done = form_action(
            request, lambda: mailbox_create(account=account, domain=data["domain"], local_part=data["local_part"],
                                            display_name=data["display_name"],
                                            forwarding_addresses=data["forwarding_addresses"],
                                            forward_keep_copy=data["forward_keep_copy"]),
            form=form, success=lambda mailbox: f"{mailbox.display_address} is ready.",
            then=lambda mailbox: redirect("mailboxes:detail", mailbox_id=mailbox.id))
        if done is not None:
            return done
    return render_form(request, "mailboxes/create.html", {"form": form, "account": account})

@account_view
@require_http_methods(["GET", "POST"])
def mailbox_detail_view(request, account, mailbox_id):
    mailbox = access_mailbox(account=account, mailbox_id=mailbox_id)
    initial = {"display_name": mailbox.display_name, "forwarding_addresses": "\n".join(mailbox.forwarding_addresses),
               "forward_keep_copy": mailbox.forward_keep_copy}
    form = MailboxUpdateForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        done = form_action(request, lambda: mailbox_update(mailbox=mailbox, **form.cleaned_data), form=form,
                           success="Saved.", then=redirect("mailboxes:detail", mailbox_id=mailbox.id))
        if done is not None:
            return done
    return render_form(request, "mailboxes/detail.html", {"mailbox": mailbox, "form": form, "groups": mailbox.groups.all(),
                                                          "forwarding": forwarding_status(mailbox=mailbox)})

@account_view
@require_POST
def mailbox_status_view(request, account, mailbox_id):
    mailbox = access_mailbox(account=account, mailbox_id=mailbox_id)
    return form_action(request, lambda: mailbox_set_status(mailbox=mailbox, status=request.POST.get("status", "")),
                       success=lambda _: f"{mailbox.display_address} is now {mailbox.get_status_display().lower()}.",
                       then=redirect("mailboxes:detail", mailbox_id=mailbox.id))

@account_view
@require_POST
def mailbox_delete_view(request, account, mailbox_id):
    mailbox = access_mailbox(account=account, mailbox_id=mailbox_id)
    address = mailbox.display_address
    mailbox_delete(mailbox=mailbox)
    messages.success(request, f"{address} and its mail were deleted.")
    return redirect("dashboard")


@account_view
@require_http_methods(["GET", "POST"])
def group_list_view(request, account):
    form = GroupForm(request.POST or None, account=account)
    if request.method == "POST" and form.is_valid():
        done = form_action(request, lambda: group_create(account=account, **form.cleaned_data), form=form,
                           success=f"Group {form.cleaned_data['name']} created.", then="mailboxes:groups")
        if done is not None:
            return done
    return render_form(request, "mailboxes/groups.html", {"groups": group_list(account=account), "form": form})

@account_view
@require_http_methods(["GET", "POST"])
def group_detail_view(request, account, group_id):
    group = access_group(account=account, group_id=group_id)
    if request.method == "POST" and request.POST.get("action") == "delete":
        group_delete(group=group)
        messages.success(request, f"Group {group.name} deleted.")
        return redirect("mailboxes:groups")
    form = GroupForm(request.POST or None, account=account,
                     initial={"name": group.name, "description": group.description, "members": group.members.all()})
    if request.method == "POST" and form.is_valid():
        done = form_action(request, lambda: group_update(group=group, **form.cleaned_data), form=form,
                           success="Group saved.", then=redirect("mailboxes:group", group_id=group.id))
        if done is not None:
            return done
    return render_form(request, "mailboxes/group.html", {"group": group, "form": form})

STATUS_CHOICES = Mailbox.Status.choices
