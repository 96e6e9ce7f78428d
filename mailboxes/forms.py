from django import forms

from domains.selectors import domains_for_mailboxes
from mailboxes.selectors import mailbox_list


def _split_addresses(text):
    return [part.strip() for part in (text or "").replace(",", "\n").splitlines() if part.strip()]


class ForwardingField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 3})

    def to_python(self, value):
        return _split_addresses(super().to_python(value))


class MailboxCreateForm(forms.Form):
    local_part = forms.CharField(max_length=200, label="Address", help_text="The part before the @.")
    domain = forms.ModelChoiceField(queryset=None, empty_label=None)
    display_name = forms.CharField(max_length=120, required=False)
    forwarding_addresses = ForwardingField(required=False, help_text="One address per line; leave empty for none.")
    forward_keep_copy = forms.BooleanField(required=False, initial=True, label="Keep a copy here when forwarding")

    def __init__(self, *args, account, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["domain"].queryset = domains_for_mailboxes(account=account)


class MailboxUpdateForm(forms.Form):
    display_name = forms.CharField(max_length=120, required=False)
    forwarding_addresses = ForwardingField(required=False, help_text="One address per line; leave empty for none.")
    forward_keep_copy = forms.BooleanField(required=False, label="Keep a copy here when forwarding")


class GroupForm(forms.Form):
    name = forms.CharField(max_length=80)
    description = forms.CharField(max_length=240, required=False)
    members = forms.ModelMultipleChoiceField(queryset=None, required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, account, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["members"].queryset = mailbox_list(account=account)
