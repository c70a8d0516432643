"""Reads for the pages, by domain. Each runs a fixed number of queries, however many jobs there are.

- dashboard: the dashboard's jobs, filtered and sorted;
- tokens: the tokens a person may use or manage;
- teams: teams, members, the audit trail, invitations;
- training_log: a job's stored events and checkpoints as the panels show them;
- imports: a token's import list;
- worker: when the background worker last checked in.

Reads never write. Callers use the names below (`selectors.jobs_for_dashboard(...)`).
"""

from jobs.selectors.dashboard import DASHBOARD_PERIODS, DASHBOARD_SORTS, jobs_for_dashboard
from jobs.selectors.imports import latest_run, listings, tracked_ids
from jobs.selectors.teams import audit_trail, invitations_for, team_members, team_memberships
from jobs.selectors.tokens import tokens_managed_by, tokens_usable_by
from jobs.selectors.worker import worker_last_seen

__all__ = [
    "DASHBOARD_PERIODS",
    "DASHBOARD_SORTS",
    "audit_trail",
    "invitations_for",
    "jobs_for_dashboard",
    "latest_run",
    "listings",
    "team_members",
    "team_memberships",
    "tokens_managed_by",
    "tokens_usable_by",
    "tracked_ids",
    "worker_last_seen",
]
