from django import forms


class DomainAddForm(forms.Form):
    name = forms.CharField(max_length=300, label="Domain", help_text="The domain you own, such as my-startup.com.")
