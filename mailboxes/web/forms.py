"""Dashboard forms for mailboxes, groups, and reading and sending mail; they only shape input for the services."""

from django import forms

from domains.selectors import domains_for_mailboxes
from mailboxes.models import Folder
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


MOVE_TARGETS = [(Folder.INBOX, "Inbox"), (Folder.ARCHIVE, "Archive"), (Folder.SPAM, "Spam")]


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=500, label="Search",
                        widget=forms.SearchInput(attrs={"placeholder": "Words, names or addresses"}))
    unread = forms.BooleanField(required=False, label="Unread only")
    has_attachment = forms.BooleanField(required=False, label="With attachments")

    def search_arguments(self):
        """email_search keywords; an unticked box means "either", not "false"."""
        data = self.cleaned_data
        return {"query": data["q"], "unread": True if data["unread"] else None,
                "has_attachment": True if data["has_attachment"] else None}

    def is_searching(self):
        return self.is_bound and self.is_valid() and any(self.cleaned_data.values())


class AddressListField(forms.CharField):
    """Comma- or line-separated addresses; email_send validates each one and names the field."""

    def to_python(self, value):
        return _split_addresses(super().to_python(value))


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in files if item]


class ComposeForm(forms.Form):
    to = AddressListField(required=False, help_text="Separate several addresses with commas.")
    cc = AddressListField(required=False, label="Cc")
    bcc = AddressListField(required=False, label="Bcc", help_text="Hidden from the other recipients.")
    subject = forms.CharField(required=False, max_length=998)
    text = forms.CharField(required=False, label="Message", widget=forms.Textarea(attrs={"rows": 14}))
    attachments = MultipleFileField(required=False)

    def send_arguments(self):
        data = self.cleaned_data
        files = [(upload.name, upload.content_type, upload.read()) for upload in data["attachments"]]
        return {"to": data["to"], "cc": data["cc"], "bcc": data["bcc"], "subject": data["subject"],
                "text": data["text"], "attachments": files}
