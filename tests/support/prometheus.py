"""Reading Prometheus metrics as Prometheus would: the text exposition parsed by prometheus_client's
own parser, into samples keyed by name and labels; and a workspace's metrics key, made the way
an owner makes it (the "Create metrics key" button), its secret read from the page."""

from __future__ import annotations

import html
import re

from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

SECRET_ON_PAGE = re.compile(r'<code id="metrics-key-secret">([^<]+)</code>')


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """{sample name: [(labels, value), …]} of an exposition (raises if it does not parse)."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def value_of(found: dict, name: str, **labels: str) -> float:
    """The one sample of `name` whose labels include `labels`."""
    matching = [value for sample_labels, value in found.get(name, []) if labels.items() <= sample_labels.items()]
    assert len(matching) == 1, (name, labels, found.get(name))
    return matching[0]


def create_metrics_key(client: Client, workspace_pk: int) -> str:
    """Press "Create metrics key" for the workspace as `client`'s person; the secret shown once."""
    response = client.post(f"/workspaces/{workspace_pk}/metrics-keys/")
    assert response.status_code == 200, response.status_code
    return html.unescape(SECRET_ON_PAGE.search(response.content.decode()).group(1))
