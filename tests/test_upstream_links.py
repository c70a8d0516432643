"""Links built from upstream data (W&B, MLflow, Hugging Face) leave ftdash without handing the
job page to the site they open: every external link carries rel="noopener noreferrer"."""

from __future__ import annotations

from html.parser import HTMLParser

INTEGRATIONS = [
    {"type": "wandb", "wandb": {"project": "ftdash-demo", "entity": "acme-ml", "name": "run-1", "tags": []}},
    {
        "type": "mlflow",
        "mlflow": {
            "tracking_uri": "https://mlflow.example.com",
            "experiment_name": "exp",
            "run_name": "run",
            "tags": {},
        },
    },
    {"type": "hf", "hf": {"output_repo_name": "acme-ml/support-bot"}},
]
FROM_CHECKPOINT = {"type": "hf", "repo": "acme-ml/faq-v1", "revision": "main"}


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.append({name: value or "" for name, value in attrs})


def external_links(html: str) -> list[dict[str, str]]:
    parser = Links()
    parser.feed(html)
    return [link for link in parser.links if link.get("href", "").startswith(("http://", "https://", "//"))]


def test_every_link_to_an_upstream_site_has_noopener_noreferrer(make_job, alice_client):
    job = make_job(integrations=INTEGRATIONS, from_checkpoint=FROM_CHECKPOINT, suffix="support-bot")

    pages = {url: alice_client.get(url).content.decode() for url in (f"/jobs/{job.pk}/", "/")}

    detail_links = external_links(pages[f"/jobs/{job.pk}/"])
    hrefs = {link["href"] for link in detail_links}
    # The page really links out to each of them (else this test would prove nothing) ...
    assert {
        "https://wandb.ai/acme-ml/ftdash-demo",
        "https://mlflow.example.com",
        "https://huggingface.co/acme-ml/support-bot",
    } <= hrefs, hrefs
    assert any(href.startswith("https://huggingface.co/acme-ml/faq-v1") for href in hrefs), hrefs
    # ... and no external link on either page can reach back through window.opener or the referrer.
    for url, html in pages.items():
        for link in external_links(html):
            rel = set(link.get("rel", "").split())
            assert {"noopener", "noreferrer"} <= rel, (url, link)
