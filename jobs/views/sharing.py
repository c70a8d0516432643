"""What the job page, the team page and the personal settings show of sharing: the job's
read-only links (to owners and members) and the status badges' URLs with their copy buttons.
Context only; the views are in jobs.views.share."""

from __future__ import annotations

from django.urls import reverse

from jobs import badges, selectors
from jobs.forms import ShareLinkForm


def badge_urls(request, key: str) -> dict[str, str]:
    """A badge's three URLs, absolute (to paste elsewhere), and its image's path on our pages."""
    urls = {fmt: request.build_absolute_uri(reverse(f"badge_{fmt}", args=[key])) for fmt in badges.FORMATS}
    return {**urls, "image": reverse("badge_svg", args=[key])}


def job_sharing_context(request, job, *, share_form=None, new_share_url: str = "") -> dict:
    context = {
        "badge": badges.job_badge(label=job.label, details=job.details),
        "badge_urls": badge_urls(request, badges.job_key(job)),
    }
    if job.can_edit:
        context |= {
            "share_form": share_form or ShareLinkForm(),
            "share_links": selectors.job_share_links(job),
            "new_share_url": new_share_url,
        }
    return context


def workspace_badge_context(request, workspace) -> dict:
    return {"workspace_badge_urls": badge_urls(request, badges.workspace_key(workspace))}
