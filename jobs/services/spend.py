"""A workspace's budget: the monthly budget and the expensive-job warning its owners set on the
Spend page (the warnings themselves go out from jobs.sync.costs)."""

from __future__ import annotations

from decimal import Decimal

from jobs.audit import audit_record
from jobs.humanize import usd
from jobs.models import Workspace


def _said(amount: Decimal | None) -> str:
    return usd(amount) if amount is not None else "none"


def workspace_budget_update(
    *, workspace: Workspace, monthly_budget_usd: Decimal | None, expensive_job_usd: Decimal | None, actor
) -> bool:
    """Set (None clears) both amounts; audited. False when nothing changed (and nothing is recorded)."""
    changes = []
    if workspace.monthly_budget_usd != monthly_budget_usd:
        changes.append(f"the monthly budget from {_said(workspace.monthly_budget_usd)} to {_said(monthly_budget_usd)}")
    if workspace.expensive_job_usd != expensive_job_usd:
        changes.append(
            f"the expensive-job warning from {_said(workspace.expensive_job_usd)} to {_said(expensive_job_usd)}"
        )
    if not changes:
        return False
    workspace.monthly_budget_usd = monthly_budget_usd
    workspace.expensive_job_usd = expensive_job_usd
    workspace.save(update_fields=["monthly_budget_usd", "expensive_job_usd"])
    audit_record(
        workspace=workspace, actor=actor, action="workspace.budget", description="changed " + " and ".join(changes)
    )
    return True
