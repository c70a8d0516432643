"""People's writes: every change a person makes to workspaces, tokens, tracked jobs, teams and
notification channels goes through here, by domain:

- access_tokens: access tokens to the JSON API (made, revoked, marked used);
- accounts: the first administrator, accounts made by administrators or by sign-up, and the
  personal workspace each account gets when it is made;
- teams: teams, members, invitations and invite links;
- tokens: API tokens in the vault;
- tracked_jobs: track, label, move, stop tracking, cancel, recalculate a finished job's cost;
- imports: reading a token's whole job list and tracking from it;
- channels: notification channels;
- alert_settings: a workspace's training alerts (rules on or off, thresholds) and its stall limit;
- pricing: a workspace's training price table;
- spend: a workspace's monthly budget and expensive-job warning;
- sharing: read-only share links, and rotating status badge keys;
- metrics_keys: a workspace's Prometheus metrics keys.

Changes are written to the workspace's audit trail (jobs.audit). Callers use the names below
(`services.job_track(...)`); the modules are how the code is organised, not part of the API.
"""

from jobs.audit import audit_record
from jobs.services.access_tokens import access_token_create, access_token_revoke, access_token_used
from jobs.services.accounts import account_create, first_admin_create, personal_workspace_create
from jobs.services.alert_settings import training_alert_settings_update
from jobs.services.channels import channel_add, channel_delete
from jobs.services.imports import ImportResult, import_resume, import_start, import_track
from jobs.services.metrics_keys import metrics_key_create, metrics_key_revoke
from jobs.services.pricing import PriceSet, training_price_remove, training_price_set
from jobs.services.sharing import (
    SHARE_EXPIRY_DAYS,
    job_badge_rotate,
    share_link_create,
    share_link_revoke,
    workspace_badge_rotate,
)
from jobs.services.spend import workspace_budget_update
from jobs.services.teams import (
    invitation_accept,
    invitation_decline,
    invitation_revoke,
    invite_accept,
    invite_create,
    invite_for_secret,
    invite_revoke,
    member_change_role,
    member_invite,
    member_remove,
    team_create,
    team_delete,
    team_rename,
)
from jobs.services.tokens import token_check, token_create, token_delete, token_update
from jobs.services.tracked_jobs import (
    can_cancel,
    cancel_offered,
    job_alerts_mute,
    job_alerts_unmute,
    job_cancel,
    job_cost_recalculate,
    job_label,
    job_move,
    job_remove,
    job_track,
    job_track_many,
)
from jobs.sync.listed_jobs import job_track_listed

__all__ = [
    "SHARE_EXPIRY_DAYS",
    "ImportResult",
    "PriceSet",
    "access_token_create",
    "access_token_revoke",
    "access_token_used",
    "account_create",
    "audit_record",
    "can_cancel",
    "cancel_offered",
    "channel_add",
    "channel_delete",
    "first_admin_create",
    "import_resume",
    "import_start",
    "import_track",
    "invitation_accept",
    "invitation_decline",
    "invitation_revoke",
    "invite_accept",
    "invite_create",
    "invite_for_secret",
    "invite_revoke",
    "job_alerts_mute",
    "job_alerts_unmute",
    "job_badge_rotate",
    "job_cancel",
    "job_cost_recalculate",
    "job_label",
    "job_move",
    "job_remove",
    "job_track",
    "job_track_listed",
    "job_track_many",
    "member_change_role",
    "member_invite",
    "member_remove",
    "metrics_key_create",
    "metrics_key_revoke",
    "personal_workspace_create",
    "share_link_create",
    "share_link_revoke",
    "team_create",
    "team_delete",
    "team_rename",
    "token_check",
    "token_create",
    "token_delete",
    "token_update",
    "training_alert_settings_update",
    "training_price_remove",
    "training_price_set",
    "workspace_badge_rotate",
    "workspace_budget_update",
]
