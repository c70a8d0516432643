from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from jobs.models import ApiToken, TrackedJob
from jobs.tokenfactory import InvalidJobId, clean_job_id


class FirstAdminForm(UserCreationForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Plain text instead of Django's HTML list, so no help text ever needs |safe.
        self.fields["password1"].help_text = (
            "At least 8 characters; not a common password, not all digits, not like the username."
        )


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Token name",
        max_length=100,
        help_text="So you can tell your tokens apart, e.g. “research project”.",
    )
    secret = forms.CharField(
        label="API token",
        max_length=2000,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted; ftdash never shows it again.",
    )

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"]
        if len(secret) < 8 or any(c.isspace() for c in secret):
            raise forms.ValidationError(
                "That does not look like an API token: it should be one word of at least 8 characters."
            )
        return secret


class TokenEditForm(TokenForm):
    """Renaming without retyping the secret: blank keeps the stored one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["secret"].required = False
        self.fields["secret"].label = "New API token"
        self.fields["secret"].help_text = "Leave blank to keep the stored token."

    def clean_secret(self) -> str:
        return super().clean_secret() if self.cleaned_data["secret"] else ""


class TokenChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, token: ApiToken) -> str:
        return f"{token.name} ({token.masked}) · {token.workspace.name}"


class TrackJobForm(forms.Form):
    job_id = forms.CharField(
        label="Job ID",
        max_length=200,
        widget=forms.TextInput(
            attrs={"placeholder": "ftjob-…", "autocomplete": "off", "spellcheck": "false"}
        ),
    )
    token = TokenChoiceField(label="Token", queryset=ApiToken.objects.none(), empty_label=None)
    label = forms.CharField(label="Label (optional)", max_length=100, required=False)

    def __init__(self, *args, tokens: list[ApiToken], **kwargs):
        super().__init__(*args, **kwargs)
        self.tokens = tokens
        self.fields["token"].queryset = ApiToken.objects.filter(pk__in=[t.pk for t in tokens]).select_related("workspace")
        if len(tokens) == 1:
            # One token: nothing to choose, so no select is shown.
            self.fields["token"].widget = forms.HiddenInput()
            self.fields["token"].initial = tokens[0].pk

    @property
    def shows_token_choice(self) -> bool:
        return len(self.tokens) > 1

    def clean_job_id(self) -> str:
        try:
            return clean_job_id(self.cleaned_data["job_id"])
        except InvalidJobId as exc:
            raise forms.ValidationError(exc.message) from None


class LabelForm(forms.ModelForm):
    class Meta:
        model = TrackedJob
        fields = ["label"]
        labels = {"label": "Label"}
