"""The audit trail: who changed what in a workspace (tokens, jobs, members, channels).

Written by people's writes (jobs.services) and by the worker when it acts on its own (a watched
token tracking a job it found); read on the team page.
"""

from __future__ import annotations

from jobs.models import AuditEvent, Workspace


def audit_record(*, workspace: Workspace, actor, action: str, description: str) -> AuditEvent:
    return AuditEvent.objects.create(
        workspace=workspace,
        actor=actor,
        actor_name=actor.get_username() if actor else "ftdash",
        action=action,
        description=description[:300],
    )
