"""What the job page and the cards show beside the snapshot: file names, deployments, cancel.

All of it comes from the shared cache (filled by the refresh), never from the network.
"""

from __future__ import annotations

from django import template

from jobs import services
from jobs.sync import deployments, files

register = template.Library()


@register.filter
def job_files(details) -> dict:
    """{file ID: FileInfo} for the files of a snapshot that the cache knows about."""
    return files.files_known(files.file_ids(details))


@register.filter
def file_of(known: dict, file_id):
    return known.get(file_id) if isinstance(known, dict) else None


@register.filter
def job_deployments(job) -> list:
    return deployments.deployments_of(job)


@register.filter
def can_cancel(job) -> bool:
    return services.can_cancel(job)
