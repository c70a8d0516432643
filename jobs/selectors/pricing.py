"""Training prices as the "Training prices" page and section show them (jobs.costs says how a
job's price is chosen from them).

Everyone in a workspace may read its table; the rows, the instance's defaults and the prices
the workspace's tokens last read from Token Factory's model information are read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from jobs.models import ApiToken, TrackedJob, TrainingPrice, Workspace
from jobs.pricing import PriceEntry
from jobs.sync import deployments


@dataclass(frozen=True)
class ListedPrice:
    """A base model's training price as Token Factory's model information gave it."""

    model: str
    usd_per_million: Decimal


def workspace_prices(*, workspace: Workspace) -> list[TrainingPrice]:
    """The workspace's own price table, by pattern, with who set each row: one query."""
    return list(
        TrainingPrice.objects.filter(workspace=workspace).select_related("created_by").order_by("pattern", "pk")
    )


def instance_prices() -> list[PriceEntry]:
    """The instance's default prices (FTDASH_TRAINING_PRICES / _FILE), as written."""
    return list(settings.FTDASH_TRAINING_PRICES)


def token_factory_prices(*, workspace: Workspace) -> list[ListedPrice]:
    """The training prices the workspace's tokens last read from Token Factory (one query, one
    cache call): several tokens that list the same model give it once."""
    token_ids = list(ApiToken.objects.filter(workspace=workspace).values_list("pk", flat=True))
    merged: dict[str, str] = {}
    for prices in deployments.training_prices(token_ids).values():
        for model, price in prices.items():
            merged.setdefault(model, price)
    return [ListedPrice(model, Decimal(price)) for model, price in sorted(merged.items())]


def workspace_models(*, workspace: Workspace) -> set[str]:
    """The base models the workspace's tracked jobs train (as their snapshots name them)."""
    models = TrackedJob.objects.filter(workspace=workspace).values_list("snapshot__model", flat=True).distinct()
    return {model for model in models if isinstance(model, str) and model}
