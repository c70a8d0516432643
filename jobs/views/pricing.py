"""Training prices: a workspace's own price table (read by its members, kept by its owners),
and the personal settings page that shows the personal workspace's (and its training alerts)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from jobs import selectors, services
from jobs.access import Need, membership_for, training_price_for_owner
from jobs.forms import TrainingPriceForm
from jobs.pricing import PATTERN_MAX_LENGTH, PriceError, matches_any, parse_pattern, price_text
from jobs.views.workspace_settings import settings_page


@login_required
@require_http_methods(["GET", "POST"])
def workspace_prices(request, pk: int):
    # Everyone in the workspace reads the table; only its owners change it.
    membership = membership_for(request.user, pk, Need.MANAGE if request.method == "POST" else Need.VIEW)
    if request.method == "POST":
        form = TrainingPriceForm(request.POST)
        if form.is_valid():
            return _set_price(request, membership, form)
        return _render_prices(request, membership, form, status=422)
    return _render_prices(request, membership, TrainingPriceForm(initial=_initial(request)))


def _initial(request) -> dict:
    """?pattern=… (a row's "Change price" link): the form starts with that pattern."""
    raw = request.GET.get("pattern", "")[: PATTERN_MAX_LENGTH + 1]
    try:
        return {"pattern": parse_pattern(raw)} if raw else {}
    except PriceError:
        return {}


def _set_price(request, membership, form):
    workspace = membership.workspace
    pattern, price = form.cleaned_data["pattern"], form.cleaned_data["usd_per_million"]
    try:
        done = services.training_price_set(workspace, pattern, price, request.user)
    except PriceError as exc:  # (the form already applied the same rules)
        form.add_error(None, str(exc))
        return _render_prices(request, membership, form, status=422)
    row, now = done.price, price_text(done.price.usd_per_million)
    if done.created:
        messages.success(request, f"Added the training price {row.pattern}: {now} USD per 1M training tokens.")
    else:
        messages.success(
            request,
            f"Changed the training price of {row.pattern} from {price_text(done.previous)} to {now} USD per 1M "
            "training tokens. Finished jobs keep the cost they were frozen with.",
        )
    if done.jobs_priced:
        messages.info(request, f"{done.jobs_priced} finished job(s) that had no price now have a final cost.")
    if not matches_any(row.pattern, selectors.workspace_models(workspace=workspace)):
        messages.info(request, f"No job in this workspace uses a model matching {row.pattern} yet.")
    return redirect("workspace_prices", pk=workspace.pk)


def _render_prices(request, membership, form, *, status=200):
    workspace = membership.workspace
    back_url, back_label = settings_page(workspace)
    context = {
        "workspace": workspace,
        "me": membership,
        "prices": selectors.workspace_prices(workspace=workspace),
        "instance_prices": selectors.instance_prices(),
        "listed_prices": selectors.token_factory_prices(workspace=workspace),
        "form": form if membership.is_owner else None,
        "back_url": back_url,
        "back_label": back_label,
    }
    return render(request, "pricing/workspace_prices.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def workspace_price_remove(request, pk: int, price_pk: int):
    price = training_price_for_owner(request.user, pk, price_pk)
    workspace = price.workspace
    if request.method == "POST":
        services.training_price_remove(price, request.user)
        messages.success(
            request, f"Removed the training price {price.pattern}. Finished jobs keep the cost they were frozen with."
        )
        return redirect("workspace_prices", pk=workspace.pk)
    return render(
        request,
        "confirm.html",
        {
            "title": f"Remove the training price {price.pattern}?",
            "body": (
                f"Jobs on models matching {price.pattern} will take their price from the next rule that matches "
                "(another row, the instance's defaults or Token Factory), or show none. "
                "Finished jobs keep the cost they were frozen with."
            ),
            "button": "Remove price",
            "cancel_url": reverse("workspace_prices", args=[workspace.pk]),
        },
    )
