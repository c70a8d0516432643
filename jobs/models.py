from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property

from jobs.finetuning import TERMINAL_STATUSES, FineTuningJob


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
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    @property
    def can_edit_jobs(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.MEMBER)

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

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="unique_token_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.masked})"

    @property
    def masked(self) -> str:
        return f"…{self.last4}"


class TrackedJob(models.Model):
    """A fine-tuning job someone asked to watch, with the last snapshot fetched from the API."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="jobs")
    token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    job_id = models.CharField(max_length=100)
    label = models.CharField(max_length=100, blank=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    snapshot = models.JSONField()
    # Copied out of the snapshot so the refresh schedule and filters need no JSON queries.
    status = models.CharField(max_length=40)
    fetched_at = models.DateTimeField()
    # Last refresh attempt, successful or not: the refresh interval counts from here, so a
    # failing API is not hammered either.
    checked_at = models.DateTimeField()
    refresh_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "job_id"], name="track_job_once")
        ]
        indexes = [models.Index(fields=["status", "checked_at"])]

    def __str__(self) -> str:
        return self.job_id

    @cached_property
    def details(self) -> FineTuningJob:
        return FineTuningJob.from_payload(self.snapshot)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def display_name(self) -> str:
        return self.label or self.job_id

    @property
    def can_edit(self) -> bool:
        """Whether the viewing user may change this job; needs `my_role` from jobs_visible_to."""
        return getattr(self, "my_role", None) in (Membership.Role.OWNER, Membership.Role.MEMBER)


class Invite(models.Model):
    """A single-use, expiring link that adds its holder to a team with a preset role.

    Only a hash of the secret part is stored: a leaked database does not hand out seats.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invites")
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
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
