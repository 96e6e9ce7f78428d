"""Dashboard forms for mailboxes, groups, and reading and sending mail; they only shape input for the services."""

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

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

    def __init__(self, *args, account, domain_id=None, **kwargs):
        super().__init__(*args, **kwargs)
        domains = domains_for_mailboxes(account=account)
        self.fields["domain"].queryset = domains
        self.fields["domain"].label_from_instance = lambda domain: domain.unicode_name
        # ?domain=<id> from a domain's page: preselected only when it is one this account may use.
        if domain_id and not self.is_bound:
            chosen = next((domain for domain in domains if str(domain.pk) == str(domain_id).strip()), None)
            if chosen is not None:
                self.initial["domain"] = chosen.pk


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
    """The search box and its filters: the keywords of mailboxes.store.search.email_search."""

    q = forms.CharField(required=False, max_length=500, label="Search",
                        widget=forms.SearchInput(attrs={"placeholder": "Words, names, addresses or file names"}))
    from_ = forms.CharField(required=False, max_length=320, label="From")
    to = forms.CharField(required=False, max_length=320, label="To or Cc")
    folder = forms.ChoiceField(required=False, label="Folder",
                               choices=[("", "Every folder but Trash and Spam"), *[(value, label) for value, label in
                                                                                  [(Folder.INBOX, "Inbox"), ("STARRED", "Starred"),
                                                                                   (Folder.SENT, "Sent"), (Folder.ARCHIVE, "Archive"),
                                                                                   (Folder.SPAM, "Spam"), (Folder.TRASH, "Trash")]]])
    date_from = forms.DateField(required=False, label="From date", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To date", widget=forms.DateInput(attrs={"type": "date"}))
    unread = forms.BooleanField(required=False, label="Unread only")
    has_attachment = forms.BooleanField(required=False, label="With attachments")

    FILTERS = ("from_", "to", "folder", "date_from", "date_to")

    def search_arguments(self):
        """email_search keywords; an unticked box means "either", not "false"."""
        data = self.cleaned_data
        return {"query": data["q"], "unread": True if data["unread"] else None,
                "has_attachment": True if data["has_attachment"] else None,
                "from_": data["from_"] or None, "to": data["to"] or None, "folder": data["folder"] or None,
                "date_from": data["date_from"], "date_to": data["date_to"]}

    def is_searching(self):
        return self.is_bound and self.is_valid() and any(self.cleaned_data.values())

    def uses_filters(self):
        return self.is_bound and self.is_valid() and any(self.cleaned_data.get(name) for name in self.FILTERS)


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
    sender = forms.ChoiceField(label="From", required=False)
    to = AddressListField(required=False, help_text="Separate several addresses with commas.")
    cc = AddressListField(required=False, label="Cc")
    bcc = AddressListField(required=False, label="Bcc", help_text="Hidden from the other recipients.")
    subject = forms.CharField(required=False, max_length=998)
    text = forms.CharField(required=False, label="Message", widget=forms.Textarea(attrs={"rows": 14}))
    attachments = MultipleFileField(required=False)

    def __init__(self, *args, senders, kind="new", **kwargs):
        super().__init__(*args, **kwargs)
        self.senders = {str(box.pk): box for box in senders}
        self.fields["sender"].choices = [(key, f"{box.display_name} <{box.address}>" if box.display_name else box.address)
                                         for key, box in self.senders.items()]
        if len(self.senders) == 1:
            self.fields["sender"].initial = next(iter(self.senders))
        if kind == "forward":
            # The forwarded email's subject and attachments go as they are; the message is a note on top.
            del self.fields["subject"], self.fields["attachments"]
            self.fields["text"].label = "Note"
            self.fields["text"].required = False
            self.fields["text"].widget.attrs["rows"] = 6

    def clean_attachments(self):
        """Sizes are checked from the upload's own record before any file is read into memory."""
        files = self.cleaned_data.get("attachments") or []
        cap = settings.QMAILING_OUTBOUND_MAX_ATTACHMENT_BYTES
        total = sum(upload.size for upload in files)
        if total > cap:
            raise forms.ValidationError(f"Attachments can total at most {filesizeformat(cap)} per message; these are "
                                        f"{filesizeformat(total)}.")
        return files

    def clean_sender(self):
        value = self.cleaned_data.get("sender")
        if not value and len(self.senders) == 1:
            return next(iter(self.senders))
        if not value:
            raise forms.ValidationError("Choose the mailbox to send from.")
        return value

    def sender_mailbox(self):
        return self.senders[self.cleaned_data["sender"]]

    def uploads(self):
        """The uploaded files as (name, content type, bytes), read once."""
        if not hasattr(self, "_uploads"):
            self._uploads = [(upload.name, upload.content_type, upload.read())
                             for upload in self.cleaned_data.get("attachments") or ()]
        return self._uploads

    def kept_attachments(self):
        """Positions of a resumed draft's files the person left ticked."""
        return set(self.data.getlist("keep")) if hasattr(self.data, "getlist") else set()
