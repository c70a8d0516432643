"""Reads for the pages, by domain. Each runs a fixed number of queries, however many jobs there are.

- access_tokens: a person's access tokens to the JSON API, and the one a secret names;
- accounts: whether any account exists yet;
- alerts: the open training-health alerts of the jobs a page renders, and who muted them;
- api: the JSON API's jobs, one job by its Token Factory ID, its events and checkpoints;
- dashboard: the dashboard's jobs, filtered and sorted, and their counts;
- tokens: the tokens a person may use or manage;
- teams: teams, members, invite links, the audit trail, invitations;
- channels: notification channels with their latest deliveries;
- alert_settings: a workspace's training-alert settings and its rules in words;
- job_page: what a job page's live part shows beside the snapshot (timeline, events,
  checkpoints, file names, deployments);
- training_log: a job's stored events and checkpoints as the panels show them;
- imports: a token's import list, its filters' choices, the rows picked;
- pricing: a workspace's training prices, the instance's defaults and Token Factory's;
- spend: a workspace's spend by month (by model, person, label), in flight, and its chart;
- sharing: the job a read-only share link opens, a job's links, a status badge;
- prometheus: a workspace's metrics keys and Prometheus metrics, and the instance's;
- worker: when the background worker last checked in.

Reads never write. Callers use the names below (`selectors.jobs_for_dashboard(...)`).
"""

from jobs.selectors.access_tokens import access_token_for_owner, access_token_for_secret, access_tokens_of
from jobs.selectors.accounts import accounts_exist
from jobs.selectors.alert_settings import (
    AlertRule,
    training_alert_rules,
    training_alert_settings,
    training_alert_settings_for,
)
from jobs.selectors.alerts import attach_open_alerts, open_alerts_of
from jobs.selectors.api import TrackedInSeveral, api_checkpoints, api_events, api_job, api_jobs
from jobs.selectors.channels import channels_with_deliveries
from jobs.selectors.dashboard import (
    DASHBOARD_PERIODS,
    DASHBOARD_SORTS,
    SUMMARY_COUNTERS,
    dashboard_counts,
    jobs_for_dashboard,
)
from jobs.selectors.imports import latest_run, listing_choices, listings, listings_picked, token_reread, tracked_ids
from jobs.selectors.job_page import cost_with_todays_prices, job_live_context, job_timeline
from jobs.selectors.pricing import (
    ListedPrice,
    instance_prices,
    token_factory_prices,
    workspace_models,
    workspace_prices,
)
from jobs.selectors.prometheus import (
    instance_metrics,
    metrics_key_for_secret,
    metrics_key_of_workspace,
    metrics_keys,
    workspace_metrics,
)
from jobs.selectors.sharing import badge_for, job_share_links, shared_job
from jobs.selectors.spend import chart_rows, spend_csv_rows, workspace_spend
from jobs.selectors.teams import (
    audit_trail,
    invitations_for,
    pending_invitations,
    team_contents,
    team_members,
    team_memberships,
    usable_invites,
)
from jobs.selectors.tokens import tokens_managed_by, tokens_usable_by
from jobs.selectors.worker import worker_last_seen

__all__ = [
    "DASHBOARD_PERIODS",
    "DASHBOARD_SORTS",
    "SUMMARY_COUNTERS",
    "AlertRule",
    "ListedPrice",
    "TrackedInSeveral",
    "access_token_for_owner",
    "access_token_for_secret",
    "access_tokens_of",
    "accounts_exist",
    "api_checkpoints",
    "api_events",
    "api_job",
    "api_jobs",
    "attach_open_alerts",
    "audit_trail",
    "badge_for",
    "channels_with_deliveries",
    "chart_rows",
    "cost_with_todays_prices",
    "dashboard_counts",
    "instance_metrics",
    "instance_prices",
    "invitations_for",
    "job_live_context",
    "job_share_links",
    "job_timeline",
    "jobs_for_dashboard",
    "latest_run",
    "listing_choices",
    "listings",
    "listings_picked",
    "metrics_key_for_secret",
    "metrics_key_of_workspace",
    "metrics_keys",
    "open_alerts_of",
    "pending_invitations",
    "shared_job",
    "spend_csv_rows",
    "team_contents",
    "team_members",
    "team_memberships",
    "token_factory_prices",
    "token_reread",
    "tokens_managed_by",
    "tokens_usable_by",
    "tracked_ids",
    "training_alert_rules",
    "training_alert_settings",
    "training_alert_settings_for",
    "usable_invites",
    "worker_last_seen",
    "workspace_metrics",
    "workspace_models",
    "workspace_prices",
    "workspace_spend",
]
