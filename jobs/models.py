from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property

from jobs import request_budget, vault
from jobs.finetuning import TERMINAL_STATUSES, FineTuningJob
from jobs.tokenfactory import TokenFactoryClient


class Workspace(models.Model):
    """Owns tokens and tracked jobs. Every user has a personal one; teams share others."""

    name = models.CharField(max_length=100)
    personal_for = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="personal_workspace",
    )
    created_at = models.DateTimeField(default=timezone.now)
    # A job queued or validating files longer than this is reported as stalled.
    queue_stall_minutes = models.PositiveIntegerField(
        default=180, help_text="Minutes a job may stay queued or validating before it counts as stalled."
    )
    # Spend (jobs.costs): the month's budget and the projected cost one job may reach before the
    # owners are warned, both in USD; empty means no budget / no warning.
    monthly_budget_usd = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    expensive_job_usd = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # The workspace's status badge key is an HMAC over its ID and this counter (jobs.badges): an
    # owner's "Rotate badge key" bumps it, and the old badge URLs stop answering.
    badge_rotation = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.name

    @property
    def is_personal(self) -> bool:
        return self.personal_for_id is not None


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MEMBER = "member", "Member"
        VIEWER = "viewer", "Viewer"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    # The roles that may track, label, move, cancel and remove jobs.
    EDITING_ROLES = (Role.OWNER, Role.MEMBER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    @property
    def can_edit_jobs(self) -> bool:
        return self.role in self.EDITING_ROLES

    @property
    def is_owner(self) -> bool:
        return self.role == self.Role.OWNER


class ApiToken(models.Model):
    """A Token Factory API key, stored encrypted (see jobs.vault); never rendered back."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    secret_encrypted = models.TextField()
    # Enough to tell two keys apart on screen, as every API console shows them.
    last4 = models.CharField(max_length=4)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # 429 answers are honoured per key: no call with this key before this time.
    rate_limited_until = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(null=True)
    last_check_message = models.CharField(max_length=300, blank=True)
    # A Token Factory project: sent as `ai_project_id` on every call made with this key.
    ai_project_id = models.CharField(max_length=200, blank=True)
    # Watching (jobs.sync.discovery): the worker lists the key's jobs every FTDASH_DISCOVERY_SECONDS
    # and tracks those created since `watch_since` whose suffix or model matches the pattern.
    watch_new_jobs = models.BooleanField(default=False)
    watch_since = models.DateTimeField(null=True, blank=True)
    watch_pattern = models.CharField(max_length=200, blank=True)
    watch_next_at = models.DateTimeField(null=True, blank=True)
    watch_failures = models.PositiveIntegerField(default=0)
    watch_claimed_until = models.DateTimeField(null=True, blank=True)
    # Why the watch stopped by itself (the API rejected the key), shown on the tokens page.
    watch_stopped_message = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="unique_token_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.masked})"

    @property
    def masked(self) -> str:
        return f"…{self.last4}"

    @property
    def is_paused(self) -> bool:
        """Whether a 429 asked for no call with this key yet (`jobs.sync.tokens.record_upstream_error`).

        The claims that hand work to the worker say the same in SQL, as
        `exclude(token__rate_limited_until__gt=now)`: keep them in step with this."""
        return self.rate_limited_until is not None and self.rate_limited_until > timezone.now()

    @property
    def paused_until(self) -> dt.datetime | None:
        """When the pause ends, while the token is paused; None otherwise."""
        return self.rate_limited_until if self.is_paused else None

    def client(self) -> TokenFactoryClient:
        """A client that calls Token Factory with this key (and project); raises
        vault.VaultError when the key cannot be decrypted. Callers open it through
        `jobs.sync.tokens.open_token`, which says the vault error the one way."""
        return TokenFactoryClient(
            vault.decrypt(self.secret_encrypted),
            project_id=self.ai_project_id,
            spend=functools.partial(request_budget.spend, self.pk),
        )


class TokenRequestBudget(models.Model):
    """A token's request bucket (jobs.request_budget): calls left, and when it was last topped
    up (seconds since the epoch). Read and written by request_budget's SQL only."""

    token = models.OneToOneField(ApiToken, primary_key=True, on_delete=models.CASCADE, related_name="+")
    calls_left = models.FloatField()
    refilled_at = models.FloatField()

    class Meta:
        db_table = request_budget.TABLE


class TrackedJob(models.Model):
    """A fine-tuning job someone asked to watch, with the last snapshot fetched from the API."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="jobs")
    token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    job_id = models.CharField(max_length=100)
    label = models.CharField(max_length=100, blank=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    snapshot = models.JSONField()
    # Copied out of the snapshot so the refresh schedule and filters need no JSON queries.
    status = models.CharField(max_length=40)
    # Last successful refresh: the snapshot is that fresh, whether or not it changed.
    fetched_at = models.DateTimeField()
    # When a refresh last found the snapshot different from the stored one: what a page shows
    # as "no change for 40 min", and part of the live version where fetched_at is not (a check
    # that finds nothing new must not re-send every card, see jobs.live).
    changed_at = models.DateTimeField(default=timezone.now)
    # Last refresh attempt, successful or not: the refresh interval counts from here, so a
    # failing API is not hammered either.
    checked_at = models.DateTimeField()
    refresh_error = models.CharField(max_length=500, blank=True)
    # Failed refreshes in a row: each one doubles the wait before the next (capped).
    consecutive_failures = models.PositiveIntegerField(default=0)
    # A background worker's claim on the next refresh, so several workers share the work.
    claimed_until = models.DateTimeField(null=True, blank=True)
    # When trained_steps (or the status) last changed, for stall detection.
    progress_changed_at = models.DateTimeField(null=True, blank=True)
    stalled_at = models.DateTimeField(null=True, blank=True)
    # When the stored training events / checkpoints last changed (jobs.sync.training_log): part of
    # the live version, so a new event or checkpoint re-renders the page's panels and cards.
    events_synced_at = models.DateTimeField(null=True, blank=True)
    checkpoints_synced_at = models.DateTimeField(null=True, blank=True)
    # Since when a due refresh waits for its token's request budget (jobs.request_budget): not
    # an error, the card just says so. Cleared by the next refresh, whatever its outcome.
    budget_wait_since = models.DateTimeField(null=True, blank=True)
    # When the job ended (its own finished_at, else when ftdash first saw it ended): the month
    # its cost counts in. Set with the final cost by jobs.sync.costs.
    finished_at = models.DateTimeField(null=True, blank=True)
    # The final cost, frozen when the job ended with the price of that moment, so a later
    # change to a price table does not rewrite what a finished job cost ("Recalculate with
    # today's prices" freezes it again). Empty while running, or while no price was known.
    cost_frozen_at = models.DateTimeField(null=True, blank=True)
    final_cost_usd = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    final_tokens = models.BigIntegerField(null=True, blank=True)
    final_price_usd_per_million = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    final_price_source = models.CharField(max_length=20, blank=True)
    final_price_pattern = models.CharField(max_length=300, blank=True)
    # Training-health alerts (jobs.sync.health): when one was last raised or cleared (part of
    # the live version, so cards and pages show it), and a person's mute of their notifications.
    alerts_changed_at = models.DateTimeField(null=True, blank=True)
    alerts_muted_at = models.DateTimeField(null=True, blank=True)
    alerts_muted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The first finish estimate of the current run, and when it was seen: what eta_slipped
    # measures a later estimate against.
    first_estimated_finish = models.DateTimeField(null=True, blank=True)
    first_estimate_seen_at = models.DateTimeField(null=True, blank=True)
    # The job's status badge key is an HMAC over its ID and this counter (jobs.badges).
    badge_rotation = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["workspace", "job_id"], name="track_job_once")]
        indexes = [
            models.Index(fields=["status", "checked_at"]),
            models.Index(fields=["workspace", "finished_at"], name="job_finished_in_workspace"),
        ]

    def __str__(self) -> str:
        return self.job_id

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        self.__dict__.pop("details", None)
        self.__dict__.pop("_cost", None)  # jobs.costs.attach's, worked out from the old snapshot

    @cached_property
    def details(self) -> FineTuningJob:
        return FineTuningJob.from_payload(self.snapshot)

    def refresh_from_db(self, *args, **kwargs) -> None:
        super().refresh_from_db(*args, **kwargs)
        self.__dict__.pop("details", None)  # parsed from the old snapshot
        self.__dict__.pop("_cost", None)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def display_name(self) -> str:
        return self.label or self.job_id

    @property
    def can_edit(self) -> bool:
        """Whether the viewing user may change this job; needs `my_role` from jobs_visible_to."""
        return getattr(self, "my_role", None) in Membership.EDITING_ROLES

    @property
    def can_manage(self) -> bool:
        """Whether the viewing user owns this job's workspace (prices, recalculating its cost);
        needs `my_role` from jobs_visible_to."""
        return getattr(self, "my_role", None) == Membership.Role.OWNER


class ShareLinkQuerySet(models.QuerySet):
    def usable(self, now: dt.datetime | None = None) -> ShareLinkQuerySet:
        """Links that still open their job: not revoked, not expired."""
        now = now or timezone.now()
        return self.filter(
            models.Q(revoked_at__isnull=True) & (models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))
        )


class ShareLink(models.Model):
    """A read-only link to one job's page for anyone who holds it, no account needed
    (jobs.services.share_links). Only a hash of its key is stored: the link is shown once."""

    job = models.ForeignKey(TrackedJob, on_delete=models.CASCADE, related_name="share_links")
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)  # empty: never
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ShareLinkQuerySet.as_manager()

    # A key is secrets.token_urlsafe(32): 43 URL-safe characters, 256 random bits.
    KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{32,64}")

    class Meta:
        ordering = ["-created_at", "-pk"]

    @staticmethod
    def hash_key(key: str) -> str:
        """What is stored of a key, and looked up by: its SHA-256."""
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def looks_like_key(cls, key: str) -> bool:
        return cls.KEY_PATTERN.fullmatch(key) is not None

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


class JobAlert(models.Model):
    """A training-health rule that fired for a job (jobs.training_health); open until it clears.

    At most one open alert per job and rule (a constraint), so a rule fires once until its
    condition clears, however many refreshes or workers look."""

    class Rule(models.TextChoices):
        OVERFITTING = "overfitting", "Overfitting"
        DIVERGED = "diverged", "Diverged"
        ETA_SLIPPED = "eta_slipped", "ETA slipped"
        SLOW = "slow", "Slow"

    job = models.ForeignKey(TrackedJob, on_delete=models.CASCADE, related_name="alerts")
    rule = models.CharField(max_length=20, choices=Rule.choices)
    message = models.CharField(max_length=300)
    raised_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    # The checkpoint an alert points at (a divergence's epoch), for the curves' marks.
    step = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["raised_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "rule"], condition=models.Q(cleared_at__isnull=True), name="one_open_alert_per_rule"
            )
        ]
        indexes = [models.Index(fields=["job", "cleared_at"], name="job_alerts_open")]

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None


class ProgressSample(models.Model):
    """A running job's trained steps at a moment, at most one a minute: the `slow` rule's pace."""

    job = models.ForeignKey(TrackedJob, on_delete=models.CASCADE, related_name="progress_samples")
    at = models.DateTimeField()
    steps = models.IntegerField()

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["job", "at"], name="job_progress_by_time")]


class TrainingAlertSettings(models.Model):
    """A workspace's training-health rules: each on or off, with its thresholds. A workspace
    without a row uses the defaults (`for_workspace`), so reading never writes."""

    workspace = models.OneToOneField(
        Workspace, primary_key=True, on_delete=models.CASCADE, related_name="training_alert_settings"
    )
    overfitting_on = models.BooleanField(default=True)
    overfitting_rises = models.PositiveSmallIntegerField(default=2)
    diverged_on = models.BooleanField(default=True)
    diverged_factor = models.FloatField(default=2.0)
    eta_slipped_on = models.BooleanField(default=True)
    eta_slip_percent = models.PositiveSmallIntegerField(default=50)
    eta_slip_minutes = models.PositiveIntegerField(default=15)
    slow_on = models.BooleanField(default=True)
    slow_percent = models.PositiveSmallIntegerField(default=40)
    slow_window_minutes = models.PositiveIntegerField(default=15)

    @classmethod
    def for_workspace(cls, workspace_id: int) -> TrainingAlertSettings:
        found = cls.objects.filter(workspace_id=workspace_id).first()
        return found or cls(workspace_id=workspace_id)


class TrainingPrice(models.Model):
    """A workspace's own price for training a model, or every model a glob matches (jobs.pricing)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="training_prices")
    pattern = models.CharField(max_length=300)
    usd_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pattern", "pk"]
        constraints = [models.UniqueConstraint(fields=["workspace", "pattern"], name="one_price_per_pattern")]

    def __str__(self) -> str:
        return f"{self.pattern} = {self.usd_per_million} USD per 1M tokens"


class BudgetAlert(models.Model):
    """A budget threshold (80 or 100 %) a workspace's month passed: notified once per month."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="budget_alerts")
    month = models.DateField()  # the first day of the month, in FTDASH_TIME_ZONE
    threshold = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "month", "threshold"], name="one_budget_alert_per_month")
        ]


class Invite(models.Model):
    """A single-use, expiring link that adds its holder to a team with a preset role.

    Only a hash of the secret part is stored: a leaked database does not hand out seats.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invites")
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    @property
    def is_usable(self) -> bool:
        return self.used_at is None and self.expires_at > timezone.now()


class AccessToken(models.Model):
    """A person's key to ftdash's JSON API (`/api/v1/`, jobs.views.api): it acts with its owner's
    workspaces and roles, never more, and a read-only one cannot write.

    Only the SHA-256 of the secret is stored (the secret is `secrets.token_urlsafe(32)`, 256 random
    bits, shown once when made): a leaked database hands out no API access."""

    class Scope(models.TextChoices):
        READ = "read", "Read-only"
        WRITE = "write", "Read and write"

    #: Every secret starts with this, so a leaked one is recognisable (secret scanners, logs).
    PREFIX = "ftd_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=100)
    secret_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.READ)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)  # empty: never expires
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"access token {self.pk} ({self.name})"

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def can_write(self) -> bool:
        return self.scope == self.Scope.WRITE

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired


class MemberInvitation(models.Model):
    """An owner's invitation of a named account to a team, waiting for that person's answer.

    Recorded the same way whether or not an account has the name (`user` is empty when none
    has), so the owner learns nothing about which usernames exist; only the named account
    sees it, on its Teams page, and joins by accepting.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="member_invitations")
    username = models.CharField(max_length=150)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="team_invitations",
    )
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["username", "pk"]
        constraints = [models.UniqueConstraint(fields=["workspace", "username"], name="one_invitation_per_username")]


class AuditEvent(models.Model):
    """Who changed what in a workspace, and when; shown to the workspace's owners."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text so the trail still reads right after the account is deleted.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=40)
    description = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["workspace", "-created_at"])]


class JobEvent(models.Model):
    """Something that happened to a tracked job, as ftdash saw it: the job's history."""

    class Kind(models.TextChoices):
        TRACKED = "tracked", "Tracking started"
        STATUS = "status", "Status changed"
        FIRST_PROGRESS = "first_progress", "First progress"
        FINISHED = "finished", "Finished"
        STALLED = "stalled", "Stalled"
        STARTED = "started", "Found by a watched token"
        BUDGET_80 = "budget_80", "Budget 80% passed"
        BUDGET_100 = "budget_100", "Budget passed"
        COST_PROJECTION = "cost_projection", "Projected to cost more than the warning"
        OVERFITTING = "overfitting", "Overfitting"
        DIVERGED = "diverged", "Diverged"
        ETA_SLIPPED = "eta_slipped", "ETA slipped"
        SLOW = "slow", "Slow"
        ALERT_CLEARED = "alert_cleared", "Alert cleared"

    job = models.ForeignKey(TrackedJob, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=40)
    message = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["job", "at"])]

    def get_status_label(self) -> str:
        return self.status.replace("_", " ")


class TrainingEvent(models.Model):
    """What Token Factory said about a job's training (its events endpoint), kept locally so
    the log outlives the provider's retention. Not `JobEvent`, which is ftdash's own history."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    job = models.ForeignKey(TrackedJob, on_delete=models.CASCADE, related_name="training_events")
    upstream_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(null=True)
    level = models.CharField(max_length=20)
    message = models.TextField()

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["job", "upstream_id"], name="training_event_once")]
        indexes = [models.Index(fields=["job", "created_at"])]


class TrainingCheckpoint(models.Model):
    """A checkpoint the API reported for a job, with its metrics as the API names them."""

    job = models.ForeignKey(TrackedJob, on_delete=models.CASCADE, related_name="checkpoints")
    upstream_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(null=True)
    step = models.IntegerField(null=True)
    # train_loss, valid_loss, full_valid_loss and the three *_mean_token_accuracy; non-finite
    # values arrive stored as the strings "NaN"/"Infinity" (tokenfactory.storable_json).
    metrics = models.JSONField(default=dict)
    fine_tuned_model_checkpoint = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["step", "created_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["job", "upstream_id"], name="training_checkpoint_once")]


class RemovedJob(models.Model):
    """A job someone stopped tracking in a workspace: a watch must not bring it back.

    Forgotten again when someone tracks the job by hand or by import.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="removed_jobs")
    job_id = models.CharField(max_length=100)
    removed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "job_id"], name="remember_removed_job_once")]


class ImportRun(models.Model):
    """One reading of a token's whole job list for "Import jobs", page by page.

    Long lists are read by the worker (or, without one, by the page's progress poll), a page
    at a time under a claim; `cursor` is where the next page starts, so a list that failed
    half-way keeps what was read and resumes there. At most one run per token is reading.
    """

    class State(models.TextChoices):
        READING = "reading", "Reading"
        FAILED = "failed", "Stopped by an error"
        DONE = "done", "Read"

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="import_runs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.READING)
    pages_read = models.PositiveIntegerField(default=0)
    jobs_found = models.PositiveIntegerField(default=0)
    cursor = models.CharField(max_length=200, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["token"], condition=models.Q(state="reading"), name="one_reading_import_per_token"
            )
        ]

    @property
    def is_reading(self) -> bool:
        return self.state == self.State.READING


class ImportListing(models.Model):
    """A job an import run found on the list: what the import page shows and tracks from."""

    run = models.ForeignKey(ImportRun, on_delete=models.CASCADE, related_name="listings")
    job_id = models.CharField(max_length=100)
    status = models.CharField(max_length=40)
    model = models.CharField(max_length=300, blank=True)
    suffix = models.CharField(max_length=300, blank=True)
    job_created_at = models.DateTimeField(null=True, blank=True)
    # The whole job when the list entry was one (tracked without a GET), else null.
    snapshot = models.JSONField(null=True, blank=True)
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["run", "job_id"], name="list_job_once_per_import")]


class NotificationChannel(models.Model):
    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"
        SLACK = "slack", "Slack"

    EVENT_CHOICES = [
        ("succeeded", "Succeeded"),
        ("failed", "Failed"),
        ("cancelled", "Cancelled"),
        ("stalled", "Stalled"),
        ("started", "Started (found by a watched token)"),
        ("budget_80", "Budget 80%"),
        ("budget_100", "Budget 100%"),
        ("cost_projection", "Expensive job"),
        ("overfitting", "Overfitting"),
        ("diverged", "Diverged"),
        ("eta_slipped", "ETA slipped"),
        ("slow", "Slow"),
    ]

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="channels")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    target = models.CharField(max_length=500, help_text="A URL, or an email address.")
    events = models.JSONField(default=list)
    # Set for a member's own email subscription; owners' team-wide channels have none.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} → {self.masked_target}"

    @property
    def masked_target(self) -> str:
        """The target as pages, the audit trail and logs show it once saved.

        A webhook URL is a credential (a Slack URL alone lets anyone post to the channel), so
        only its scheme, host and last four characters are shown, as for API tokens.
        """
        if self.kind == self.Kind.EMAIL:
            return self.target
        parts = urlsplit(self.target)
        rest = self.target.partition(f"{parts.scheme}://{parts.netloc}")[2]
        if not rest.strip("/"):
            return self.target
        # Short paths are not shown at all: four characters of eight would give half away.
        return f"{parts.scheme}://{parts.netloc}/…" + (rest[-4:] if len(rest) >= 12 else "")


class Delivery(models.Model):
    """One notification to one channel for one event; retried with backoff a few times."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    # Null for a "Send test" delivery.
    event = models.ForeignKey(JobEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    payload = models.JSONField()
    # Sent with every attempt (the X-Ftdash-Delivery header, and in a webhook's body) so that a
    # receiver can drop a repeat: a worker killed before it recorded the answer sends again.
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    # Counted when an attempt is claimed, so one whose worker died still counts.
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One transition, one notification per channel: even two workers cannot send twice.
            models.UniqueConstraint(fields=["channel", "event"], name="one_delivery_per_event")
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]


class WorkerHeartbeat(models.Model):
    """Each running `poll_jobs` checks in here, so the pages can tell whether one is alive."""

    name = models.CharField(max_length=200, unique=True)
    last_seen = models.DateTimeField(default=timezone.now)


class MetricsKey(models.Model):
    """A read-only key to a workspace's Prometheus metrics (`/metrics/<key>`, or `/metrics/`
    with `Authorization: Bearer <key>`), made by its owners (jobs.services.metrics_keys).

    Only a sha256 hash of the secret is stored; the secret is shown once, when it is made.
    A revoked key stays (revoked_at set) so the list and the audit trail can say who made it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="metrics_keys")
    key_hash = models.CharField(max_length=64, unique=True)
    # Enough to tell two keys apart on screen, as for API tokens.
    last4 = models.CharField(max_length=4)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"metrics key …{self.last4} of {self.workspace_id}"

    @property
    def masked(self) -> str:
        return f"…{self.last4}"
