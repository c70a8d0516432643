from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib.auth.forms import PasswordChangeForm, UserCreationForm
from django.urls import reverse

from jobs.humanize import usd
from jobs.models import (
    AccessToken,
    ApiToken,
    Membership,
    NotificationChannel,
    TrackedJob,
    TrainingAlertSettings,
    Workspace,
)
from jobs.notifications import UnsafeDestination, check_webhook_url, spend_path
from jobs.pricing import PATTERN_MAX_LENGTH, PriceError, parse_pattern, parse_price
from jobs.selectors.alert_settings import training_alert_rules
from jobs.tokenfactory import JOB_ID_PATTERN, InvalidJobId, clean_api_key, clean_job_id
from jobs.training_health import RULE_LABELS

#: Most job IDs one "Track a job" submission may hold (each one is a call to the API).
MAX_JOB_IDS = 50


# Plain text instead of Django's HTML list of validators, so no help text ever needs |safe.
PASSWORD_HELP = "At least 8 characters; not a common password, not all digits, not like the username."


class AccountCreationForm(UserCreationForm):
    """Username, password and confirmation: first run, invites, sign-up and admins' form."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["password1"].help_text = PASSWORD_HELP


class PlainPasswordChangeForm(PasswordChangeForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].help_text = PASSWORD_HELP


class WorkspaceChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, workspace: Workspace) -> str:
        return workspace.name


class TokenChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, token: ApiToken) -> str:
        return f"{token.name} ({token.masked}) · {token.workspace.name}"


class WorkspaceFormMixin:
    """A "Workspace" select, shown only when there is more than one to choose from."""

    def add_workspace_field(self, workspaces: list[Workspace], *, label: str = "Workspace") -> None:
        self.workspaces = workspaces
        field = WorkspaceChoiceField(
            label=label,
            queryset=Workspace.objects.filter(pk__in=[w.pk for w in workspaces]),
            empty_label=None,
        )
        if len(workspaces) == 1:
            field.widget = forms.HiddenInput()
            field.initial = workspaces[0].pk
        # Left out (a script, or an old form), it means the first: the personal workspace.
        field.required = False
        self.fields["workspace"] = field

    #: What a form that leaves the workspace out means; the first (personal) one unless set.
    default_workspace: Workspace | None = None

    def clean_workspace(self) -> Workspace | None:
        default = self.default_workspace or (self.workspaces[0] if self.workspaces else None)
        return self.cleaned_data.get("workspace") or default

    @property
    def shows_workspace_choice(self) -> bool:
        return len(self.workspaces) > 1


class TokenForm(WorkspaceFormMixin, forms.Form):
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
    ai_project_id = forms.CharField(
        label="Project ID (optional)",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="For accounts with several Token Factory projects: sent as ai_project_id with every call made with this token.",
    )
    watch = forms.BooleanField(
        label="Watch for new jobs",
        required=False,
        help_text="The background worker lists this token's jobs regularly and starts tracking every job created from now on.",
    )
    watch_pattern = forms.CharField(
        label="Only jobs whose suffix or model matches (optional)",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "prod-*, Qwen/*"}),
        help_text="Shell-style patterns, comma-separated, not case-sensitive: * matches anything, ? one character.",
    )

    def __init__(self, *args, workspaces: list[Workspace], **kwargs):
        super().__init__(*args, **kwargs)
        self.add_workspace_field(workspaces)

    def clean_ai_project_id(self) -> str:
        value = self.cleaned_data["ai_project_id"].strip()
        if value and not all("!" <= char <= "~" for char in value):
            raise forms.ValidationError("A project ID is one word of plain letters, digits and punctuation.")
        return value

    def clean_secret(self) -> str:
        try:
            return clean_api_key(self.cleaned_data["secret"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class TokenEditForm(TokenForm):
    """Rename, replace the secret (blank keeps the stored one) or move to another workspace."""

    def __init__(self, *args, token: ApiToken, **kwargs):
        kwargs.setdefault("initial", {}).update(
            name=token.name,
            workspace=token.workspace_id,
            ai_project_id=token.ai_project_id,
            watch=token.watch_new_jobs,
            watch_pattern=token.watch_pattern,
        )
        super().__init__(*args, **kwargs)
        self.default_workspace = token.workspace  # left out: the token stays where it is
        self.fields["secret"].required = False
        self.fields["secret"].label = "New API token"
        self.fields["secret"].help_text = "Leave blank to keep the stored token."
        self.fields["workspace"].help_text = "Moving a token moves the jobs tracked with it."

    def clean_secret(self) -> str:
        return super().clean_secret() if self.cleaned_data["secret"] else ""


class WorkspaceTokenForm(WorkspaceFormMixin, forms.Form):
    """Where a job lives and which of that workspace's tokens reads it."""

    workspace_label = "Workspace"

    def __init__(self, *args, tokens: list[ApiToken], **kwargs):
        super().__init__(*args, **kwargs)
        self.tokens = tokens
        # Only workspaces that have a token can hold a job.
        workspaces = list({t.workspace_id: t.workspace for t in tokens}.values())
        self.add_workspace_field(workspaces, label=self.workspace_label)
        field = TokenChoiceField(
            label="Token",
            queryset=ApiToken.objects.filter(pk__in=[t.pk for t in tokens]).select_related("workspace"),
            empty_label=None,
        )
        if len(tokens) == 1:
            # One token: nothing to choose, so no select is shown.
            field.widget = forms.HiddenInput()
            field.initial = tokens[0].pk
        self.fields["token"] = field

    @property
    def shows_token_choice(self) -> bool:
        return len(self.tokens) > 1

    def clean(self):
        cleaned = super().clean()
        workspace, token = cleaned.get("workspace"), cleaned.get("token")
        if token and "workspace" not in self.data:
            cleaned["workspace"] = workspace = token.workspace  # not chosen: the token's own
        if workspace and token and token.workspace_id != workspace.pk:
            self.add_error(
                "token",
                f"“{token.name}” belongs to {token.workspace.name}; pick one of {workspace.name}'s tokens.",
            )
        return cleaned


class TrackJobForm(WorkspaceTokenForm):
    job_id = forms.CharField(
        label="Job ID",
        max_length=50 * 80,
        widget=forms.Textarea(
            attrs={"placeholder": "ftjob-…", "autocomplete": "off", "spellcheck": "false", "rows": 1}
        ),
        help_text="Several at once: one per line, or separated by spaces or commas.",
    )
    label = forms.CharField(label="Label (optional)", max_length=100, required=False)
    field_order = ["job_id", "workspace", "token", "label"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order_fields(self.field_order)

    def clean_job_id(self) -> list[str]:
        """The IDs given, in order and each once. A lone ID must be valid; among several, the
        invalid ones are reported per ID with the others' outcomes."""
        ids = list(dict.fromkeys(part for part in re.split(r"[\s,;]+", self.cleaned_data["job_id"]) if part))
        if len(ids) > MAX_JOB_IDS:
            raise forms.ValidationError(f"At most {MAX_JOB_IDS} job IDs at once, please; that was {len(ids)}.")
        if not any(JOB_ID_PATTERN.fullmatch(job_id) for job_id in ids):
            try:
                clean_job_id(ids[0] if ids else "")
            except InvalidJobId as exc:
                raise forms.ValidationError(exc.message) from None
        return ids


class JobMoveForm(WorkspaceTokenForm):
    workspace_label = "Move to workspace"


class LabelForm(forms.ModelForm):
    class Meta:
        model = TrackedJob
        fields = ["label"]
        labels = {"label": "Label"}


class TeamForm(forms.Form):
    name = forms.CharField(label="Team name", max_length=100)


ROLE_CHOICES = Membership.Role.choices


class MemberAddForm(forms.Form):
    # Not checked against the accounts here: the answer must not tell whether the name exists.
    username = forms.CharField(
        label="Username",
        max_length=150,
        help_text="They see the invitation on their Teams page and join when they accept it.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES, initial=Membership.Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES)


class InviteForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES, initial=Membership.Role.MEMBER)


class ShareLinkForm(forms.Form):
    """ "Create read-only link": how long the link works (the keys of SHARE_EXPIRY_CHOICES are
    those of jobs.services.SHARE_EXPIRY_DAYS)."""

    SHARE_EXPIRY_CHOICES = [("1", "1 day"), ("7", "7 days"), ("30", "30 days"), ("never", "Never")]
    expiry = forms.ChoiceField(label="Expires after", choices=SHARE_EXPIRY_CHOICES, initial="7")

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", "share_%s")  # the job page has other forms
        super().__init__(*args, **kwargs)


class EventChoices(forms.CheckboxSelectMultiple):
    """A channel's events as checkboxes; `notes` (value → {text, link, url}) are shown beside
    their choice and describe its checkbox (aria-describedby)."""

    option_template_name = "forms/event_option.html"
    notes: dict[str, dict[str, str]] = {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex=subindex, attrs=attrs)
        note = self.notes.get(value)
        if note:
            option["note"] = note
            if option["attrs"].get("id"):
                option["note_id"] = f"{option['attrs']['id']}_note"
                option["attrs"]["aria-describedby"] = option["note_id"]
        return option


def cost_event_notes(workspace: Workspace, *, owner: bool) -> dict[str, dict[str, str]]:
    """Beside the budget and expensive-job choices: what they are measured against, or that
    nothing is set yet (so they are never sent), with the Spend page where owners set it."""
    url = f"{spend_path()}?workspace={workspace.pk}"
    link = "set one on the Spend page" if owner else "the Spend page"

    def unset(what: str) -> dict[str, str]:
        text = f"No {what} is set for this workspace, so this is never sent"
        return {"text": text + (":" if owner else "; its owners set one on"), "link": link, "url": url}

    if workspace.monthly_budget_usd:
        budget = {"text": f"Monthly budget: {usd(workspace.monthly_budget_usd)}.", "link": "", "url": ""}
    else:
        budget = unset("monthly budget")
    if workspace.expensive_job_usd is not None:
        limit = usd(workspace.expensive_job_usd)
        expensive = {"text": f"When one job is projected to cost more than {limit}.", "link": "", "url": ""}
    else:
        expensive = unset("expensive-job warning")
    return {"budget_80": budget, "budget_100": budget, "cost_projection": expensive}


def alert_event_notes(workspace: Workspace, alerts: TrainingAlertSettings, *, owner: bool) -> dict[str, dict[str, str]]:
    """Beside the training-alert choices: what makes each fire here, or that its rule is off in
    this workspace (so it is never sent), with the "Training alerts" page where owners turn it on."""
    url = reverse("workspace_training_alerts", args=[workspace.pk])
    notes = {}
    for rule in training_alert_rules(alerts, workspace=workspace):
        if rule.name not in RULE_LABELS:
            continue  # (stalls: always on)
        if rule.on:
            notes[rule.name] = {"text": f"When {rule.text}.", "link": "", "url": ""}
        elif owner:
            notes[rule.name] = {
                "text": "This rule is off for this workspace:",
                "link": "turn it on under Training alerts",
                "url": url,
            }
        else:
            notes[rule.name] = {
                "text": "This rule is off for this workspace; its owners turn it on under",
                "link": "Training alerts",
                "url": url,
            }
    return notes


class ChannelForm(forms.Form):
    kind = forms.ChoiceField(label="Channel type", choices=NotificationChannel.Kind.choices)
    url = forms.URLField(
        label="URL",
        required=False,
        assume_scheme="https",
        help_text="For webhooks and Slack incoming webhooks: where ftdash POSTs the notification.",
    )
    email = forms.EmailField(label="Email address", required=False)
    events = forms.MultipleChoiceField(
        label="Send on",
        choices=NotificationChannel.EVENT_CHOICES,
        initial=["succeeded", "failed", "cancelled", "stalled"],
        widget=EventChoices,
    )

    def __init__(self, *args, workspace: Workspace, alerts: TrainingAlertSettings, email_only: bool = False, **kwargs):
        # One form per workspace on the Notifications page: ids of their own.
        kwargs.setdefault("auto_id", f"id_ws{workspace.pk}_%s")
        super().__init__(*args, **kwargs)
        self.email_only = email_only
        owner = not email_only
        self.fields["events"].widget.notes = cost_event_notes(workspace, owner=owner) | alert_event_notes(
            workspace, alerts, owner=owner
        )
        if email_only:
            # Members and viewers choose what they receive themselves, by email.
            self.fields["kind"].choices = [(NotificationChannel.Kind.EMAIL, "Email")]

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind == NotificationChannel.Kind.EMAIL:
            if not cleaned.get("email"):
                self.add_error("email", "Enter the email address to send to.")
            cleaned["target"] = cleaned.get("email", "")
        elif kind:
            if not cleaned.get("url"):
                self.add_error("url", "Enter the URL to send to.")
            else:
                try:
                    cleaned["target"] = check_webhook_url(cleaned["url"])
                except UnsafeDestination as exc:
                    self.add_error("url", str(exc))
        return cleaned


def _bounded(field_class, setting, *, label: str, low, high, message: str, **kwargs):
    """A required number from `low` to `high` for the model field `setting`, whose default (what a
    workspace that never changed it uses) the help text names: one message for every way of getting
    it wrong."""
    default = setting.default
    if isinstance(default, float) and default.is_integer():
        default = int(default)  # "default 2", as the page shows the number
    errors = dict.fromkeys(("required", "invalid", "min_value", "max_value", "max_decimal_places"), message)
    return field_class(
        label=label,
        min_value=low,
        max_value=high,
        help_text=f"From {low:,} to {high:,}; default {default:,}.",
        error_messages=errors,
        **kwargs,
    )


_alert_setting = TrainingAlertSettings._meta.get_field


class TrainingAlertsForm(forms.Form):
    """A workspace's training-health rules (jobs.training_health) on or off with their
    thresholds, and its queued-too-long stall limit: the "Training alerts" page (owners)."""

    overfitting_on = forms.BooleanField(label="Alert on overfitting", required=False)
    overfitting_rises = _bounded(
        forms.IntegerField,
        _alert_setting("overfitting_rises"),
        label="Validation loss rises on this many checkpoints in a row",
        low=1,
        high=10,
        message="Enter a whole number of checkpoints from 1 to 10.",
    )
    diverged_on = forms.BooleanField(label="Alert when a run diverges", required=False)
    diverged_factor = _bounded(
        forms.FloatField,
        _alert_setting("diverged_factor"),
        label="A loss at least this many times the checkpoint before",
        low=1.1,
        high=100,
        message="Enter a factor from 1.1 to 100, such as 2 or 2.5.",
        widget=forms.NumberInput(attrs={"step": "0.1", "inputmode": "decimal"}),
    )
    eta_slipped_on = forms.BooleanField(label="Alert when the ETA slips", required=False)
    eta_slip_percent = _bounded(
        forms.IntegerField,
        _alert_setting("eta_slip_percent"),
        label="Finish estimate later by more than this % of the time it had left",
        low=1,
        high=1000,
        message="Enter a whole percentage from 1 to 1,000.",
    )
    eta_slip_minutes = _bounded(
        forms.IntegerField,
        _alert_setting("eta_slip_minutes"),
        label="and by at least this many minutes",
        low=1,
        high=10080,
        message="Enter a whole number of minutes from 1 to 10,080 (a week).",
    )
    slow_on = forms.BooleanField(label="Alert when a run slows down", required=False)
    slow_percent = _bounded(
        forms.IntegerField,
        _alert_setting("slow_percent"),
        label="Steps per minute below this % of the job's own median",
        low=1,
        high=99,
        message="Enter a whole percentage from 1 to 99.",
    )
    slow_window_minutes = _bounded(
        forms.IntegerField,
        _alert_setting("slow_window_minutes"),
        label="over the last this many minutes",
        low=5,
        high=1440,
        message="Enter a whole number of minutes from 5 to 1,440 (a day).",
    )
    queue_stall_minutes = _bounded(
        forms.IntegerField,
        Workspace._meta.get_field("queue_stall_minutes"),
        label="Queued or validating for more than (minutes)",
        low=1,
        high=43200,
        message="Enter a whole number of minutes from 1 to 43,200 (30 days).",
    )

    #: Each rule's fields, in the page's order: its switch first.
    RULES = {
        "overfitting": ("overfitting_on", "overfitting_rises"),
        "diverged": ("diverged_on", "diverged_factor"),
        "eta_slipped": ("eta_slipped_on", "eta_slip_percent", "eta_slip_minutes"),
        "slow": ("slow_on", "slow_percent", "slow_window_minutes"),
    }

    def __init__(self, *args, alerts: TrainingAlertSettings, workspace: Workspace, **kwargs):
        initial = {name: getattr(alerts, name) for fields in self.RULES.values() for name in fields}
        initial["queue_stall_minutes"] = workspace.queue_stall_minutes
        kwargs.setdefault("initial", initial)
        kwargs.setdefault("auto_id", "alerts_%s")
        super().__init__(*args, **kwargs)

    def rules(self) -> list[dict]:
        """Each rule's label, switch and thresholds, as the template lays them out."""
        return [
            {
                "name": name,
                "label": RULE_LABELS[name],
                "switch": self[fields[0]],
                "thresholds": [self[field] for field in fields[1:]],
            }
            for name, fields in self.RULES.items()
        ]


class UsdAmountField(forms.CharField):
    """A positive sum of US dollars, or nothing (None): "250", "99.50", "$1,200" are read;
    zero, negatives, NaN, infinities, text and more than cents are refused with a message."""

    LIMIT = Decimal("1000000000")

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 30)
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}))
        super().__init__(**kwargs)

    def clean(self, value):
        text = (super().clean(value) or "").strip().removeprefix("$").replace(",", "").strip()
        if not text:
            return None
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise forms.ValidationError("Enter an amount in US dollars, like 250 or 99.50.", code="invalid") from None
        if not amount.is_finite():
            raise forms.ValidationError("Enter an amount in US dollars, like 250 or 99.50.", code="invalid")
        if amount <= 0:
            raise forms.ValidationError("Enter a positive amount (more than $0), or leave it empty.", code="min")
        if amount >= self.LIMIT:
            raise forms.ValidationError("Enter an amount under $1,000,000,000.", code="max")
        if amount != amount.quantize(Decimal("0.01")):
            raise forms.ValidationError("Use whole cents at most (two decimal places).", code="cents")
        return amount.quantize(Decimal("0.01"))


class BudgetForm(forms.Form):
    """A workspace's monthly budget and its expensive-job warning, on the Spend page (owners)."""

    monthly_budget_usd = UsdAmountField(
        label="Monthly budget (USD)",
        help_text="Finished jobs plus running jobs' projected cost; notifications at 80% and 100%. Empty: no budget.",
    )
    expensive_job_usd = UsdAmountField(
        label="Warn when one job is projected to cost more than $",
        help_text="In US dollars; one notification per job. Empty: no warning.",
    )

    def __init__(self, *args, workspace: Workspace, **kwargs):
        kwargs.setdefault(
            "initial",
            {"monthly_budget_usd": workspace.monthly_budget_usd, "expensive_job_usd": workspace.expensive_job_usd},
        )
        kwargs.setdefault("auto_id", "budget_%s")
        super().__init__(*args, **kwargs)


class FlagInput(forms.CheckboxInput):
    """A checkbox sent as `name=1` in a shareable URL: "0", "false" or anything else read as unticked."""

    def __init__(self, attrs=None):
        super().__init__({"value": "1", **(attrs or {})})

    def value_from_datadict(self, data, files, name):
        return data.get(name) in ("1", "on", "true")


class DashboardFilterForm(forms.Form):
    """The dashboard's filters and sort order (a GET form: the URL is shareable)."""

    STATUS_CHOICES = [
        ("", "Any status"),
        ("running", "Running"),
        ("queued", "Queued"),
        ("validating_files", "Validating files"),
        ("succeeded", "Succeeded"),
        ("failed", "Failed"),
        ("cancelled", "Cancelled"),
        ("stalled", "Stalled"),
    ]

    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Job ID, label, suffix or model"}),
    )
    workspace = forms.TypedChoiceField(label="Workspace", required=False, coerce=int, empty_value=None)
    status = forms.ChoiceField(label="Status", required=False, choices=STATUS_CHOICES)
    model = forms.CharField(label="Model", required=False, max_length=200)
    period = forms.ChoiceField(label="Tracked", required=False)
    sort = forms.ChoiceField(label="Sort by", required=False)
    # Jobs with an open training-health alert (?alert=1).
    alert = forms.BooleanField(label="Has an alert", required=False, widget=FlagInput)

    def __init__(self, *args, workspaces: list[Workspace], sorts: dict, periods: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workspace"].choices = [("", "All workspaces")] + [(w.pk, w.name) for w in workspaces]
        self.fields["period"].choices = [("", "Any time")] + [(k, label) for k, (label, _) in periods.items()]
        self.fields["sort"].choices = [(k, label) for k, (label, _) in sorts.items()]
        self.workspaces = {w.pk: w for w in workspaces}

    def filters(self) -> dict:
        """Valid filters only: a bad value in the URL is ignored, never an error page."""
        data = {}
        if self.is_bound:
            self.is_valid()  # fills cleaned_data with the fields that are valid, drops the rest
            data = self.cleaned_data
        return {
            "q": (data.get("q") or "").strip(),
            "workspace": self.workspaces.get(data.get("workspace")),
            "status": data.get("status", ""),
            "model": (data.get("model") or "").strip(),
            "period": data.get("period", ""),
            "sort": data.get("sort") or "newest",
            "alert": bool(data.get("alert")),
        }


class ImportFilterForm(forms.Form):
    """Narrowing a token's listed jobs on the "Import jobs" page (a GET form, shareable)."""

    status = forms.ChoiceField(label="Status", required=False)
    model = forms.ChoiceField(label="Model", required=False)
    created_from = forms.DateField(label="Created from", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    created_to = forms.DateField(label="Created to", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, statuses: list[str], models: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", "Any status")] + [(s, s.replace("_", " ")) for s in statuses]
        self.fields["model"].choices = [("", "Any model")] + [(m, m) for m in models]

    def filters(self) -> dict:
        """Valid filters only: a bad value in the URL is ignored, never an error page."""
        data = {}
        if self.is_bound:
            self.is_valid()
            data = self.cleaned_data
        return {
            key: data.get(key) or ("" if key in ("status", "model") else None)
            for key in ("status", "model", "created_from", "created_to")
        }


class TrainingPriceForm(forms.Form):
    """A row of a workspace's price table: jobs.pricing's rules, and its words when refused."""

    pattern = forms.CharField(
        label="Model or pattern",
        strip=True,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "spellcheck": "false",
                "maxlength": PATTERN_MAX_LENGTH,
                "placeholder": "meta-llama/Llama-3.1-8B-Instruct",
            }
        ),
        help_text=(
            "A base model's name, or a pattern such as meta-llama/* (* matches anything, ? one character); "
            "not case-sensitive. Adding a model or pattern already listed changes its price."
        ),
        error_messages={
            "required": "Enter a model name, such as meta-llama/Llama-3.1-8B-Instruct, or a pattern like Qwen/*."
        },
    )
    usd_per_million = forms.CharField(
        label="USD per 1M training tokens",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "0.4"}),
        help_text="In US dollars, for one million trained tokens, such as 0.4. Zero is allowed (a free model).",
        error_messages={"required": "Enter a price in USD per 1M training tokens, such as 0.4."},
    )

    def clean_pattern(self) -> str:
        try:
            return parse_pattern(self.cleaned_data["pattern"])
        except PriceError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_usd_per_million(self):
        try:
            return parse_price(self.cleaned_data["usd_per_million"])
        except PriceError as exc:
            raise forms.ValidationError(str(exc)) from None


class AccessTokenForm(forms.Form):
    """ "Create access token": a name, an expiry and a scope (the Access tokens page)."""

    #: (choice, label, days; None = never)
    EXPIRIES = [("30", "30 days", 30), ("90", "90 days", 90), ("365", "A year", 365), ("never", "Never", None)]

    name = forms.CharField(
        label="Token name",
        max_length=100,
        help_text="So you can tell your tokens apart, e.g. “training script”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    expiry = forms.ChoiceField(
        label="Expires after",
        choices=[(value, label) for value, label, _days in EXPIRIES],
        initial="90",
        widget=forms.RadioSelect,
    )
    scope = forms.ChoiceField(
        label="Scope",
        choices=AccessToken.Scope.choices,
        initial=AccessToken.Scope.READ,
        widget=forms.RadioSelect,
        help_text="Read-only reads jobs; read and write also tracks and stops tracking them.",
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the token a name.")
        return name

    @property
    def expires_in_days(self) -> int | None:
        return {value: days for value, _label, days in self.EXPIRIES}[self.cleaned_data["expiry"]]
