from django import forms


class SignUpForm(forms.Form):
    full_name = forms.CharField(max_length=120, required=False, label="Your name")
    email = forms.EmailField(max_length=254)
    password = forms.CharField(widget=forms.PasswordInput, min_length=1, help_text="At least 10 characters, not a common password.")


class SignInForm(forms.Form):
    email = forms.EmailField(max_length=254)
    password = forms.CharField(widget=forms.PasswordInput)
