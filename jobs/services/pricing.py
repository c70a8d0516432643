"""Training prices: a workspace's owners add, change and remove rows of its price table.

A price is set by pattern: setting a pattern the table already has (whatever its letter case,
since patterns match case-insensitively) changes that row's price. Ended jobs that had no price
get one as soon as a row applies to them (`jobs.sync.costs.freeze_unpriced`); a finished job's
frozen cost is never rewritten here ("Recalculate with today's prices" does that, per job).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from jobs.audit import audit_record
from jobs.models import TrainingPrice, Workspace
from jobs.pricing import parse_pattern, parse_price, price_text
from jobs.sync.costs import freeze_unpriced


@dataclass(frozen=True)
class PriceSet:
    price: TrainingPrice
    previous: Decimal | None  # the row's price before, or None when the row is new
    jobs_priced: int  # ended jobs that had no price and got their final cost from this one

    @property
    def created(self) -> bool:
        return self.previous is None


def training_price_set(workspace: Workspace, pattern: object, price: object, actor) -> PriceSet:
    """Create the row for `pattern`, or change its price; audited. PriceError (a ValueError with
    the message for a person) when the pattern or the price cannot be used."""
    pattern, usd_per_million = parse_pattern(pattern), parse_price(price)
    with transaction.atomic():
        row = (
            TrainingPrice.objects.select_for_update()
            .filter(workspace=workspace, pattern__iexact=pattern)
            .order_by("pk")
            .first()
        )
        previous = row.usd_per_million if row is not None else None
        if row is None:
            row = TrainingPrice.objects.create(
                workspace=workspace, pattern=pattern, usd_per_million=usd_per_million, created_by=actor
            )
            description = f"added the training price {pattern} = {price_text(usd_per_million)} USD per 1M tokens"
        else:
            row.pattern, row.usd_per_million = pattern, usd_per_million
            row.created_by, row.created_at = actor, timezone.now()
            row.save(update_fields=["pattern", "usd_per_million", "created_by", "created_at"])
            description = (
                f"changed the training price of {pattern} from {price_text(previous)} to "
                f"{price_text(usd_per_million)} USD per 1M tokens"
            )
        audit_record(workspace=workspace, actor=actor, action="price.set", description=description)
    return PriceSet(price=row, previous=previous, jobs_priced=freeze_unpriced(workspace))


@transaction.atomic
def training_price_remove(price: TrainingPrice, actor) -> None:
    """Remove a row of a workspace's price table; audited. Finished jobs keep their frozen cost."""
    audit_record(
        workspace=price.workspace,
        actor=actor,
        action="price.remove",
        description=f"removed the training price {price.pattern} = {price_text(price.usd_per_million)} USD per 1M tokens",
    )
    price.delete()
