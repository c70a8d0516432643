"""The JSON API's docs page (/api/v1/docs): ftdash's own page, rendered from the schema scripts
read at /api/v1/openapi.json, so it cannot go stale: every operation there is on the page with
its method, path, summary, parameters, request body fields and answers; readable signed out."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client

DOCS = "/api/v1/docs"


class Articles(HTMLParser):
    """The text of each `<article id=…>` of a page (they do not nest), and the page's links."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[str, list[str]] = {}
        self.links: list[str] = []
        self._current: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "article":
            self._current = attrs.get("id") or ""
            self.texts[self._current] = []
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "article":
            self._current = None

    def handle_data(self, data):
        if self._current is not None:
            self.texts[self._current].append(data)


def _page(client: Client) -> Articles:
    response = client.get(DOCS)
    assert response.status_code == 200
    parser = Articles()
    parser.feed(response.content.decode())
    return parser


def _words(parts: list[str]) -> str:
    return " ".join("".join(parts).split())


@pytest.mark.django_db
def test_the_docs_page_lists_every_operation_of_the_schema_with_its_parameters_and_answers():
    client = Client()  # signed out: the docs are public
    schema = client.get("/api/v1/openapi.json").json()
    page = _page(client)
    operations = [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]
    assert len(operations) >= 6
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        assert op["operationId"] in page.texts, f"{where} is not on the docs page"
        text = _words(page.texts[op["operationId"]])
        assert f"{method.upper()} {path}" in text and op["summary"] in text, where
        for parameter in op.get("parameters", []):
            kind = f"{parameter['name']} {parameter['in']}, {'required' if parameter.get('required') else 'optional'}"
            assert kind in text, f"{where}: parameter {parameter['name']}"
            if parameter.get("description"):
                assert _words([parameter["description"]]).replace("`", "") in text, f"{where}: {parameter['name']}"
        for status, answer in op["responses"].items():
            assert f"{status} {answer['description']}" in text, f"{where}: answer {status}"
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body:
            shape = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
            for name in shape["properties"]:
                assert f"{name} body," in text, f"{where}: body field {name}"
        assert f"#{op['operationId']}" in page.links, f"{where} is missing from the page's contents"


@pytest.mark.django_db
def test_every_shape_is_on_the_page_with_its_fields_and_links_to_it_resolve():
    client = Client()
    schema = client.get("/api/v1/openapi.json").json()
    page = _page(client)
    for name, shape in schema["components"]["schemas"].items():
        text = _words(page.texts[f"shape-{name}"])
        for field in shape.get("properties", {}):
            assert field in text, f"{name}.{field}"
    anchors = {link[1:] for link in page.links if link.startswith("#")}
    assert anchors <= set(page.texts) | {"main", "api-auth", "api-errors", "api-endpoints", "api-shapes"}


@pytest.mark.django_db
def test_the_docs_page_says_how_to_authenticate_and_what_an_error_looks_like(alice_client):
    html = alice_client.get(DOCS).content.decode()  # signed in too: the site's own menu around it
    assert "Authorization: Bearer ftd_…" in html and 'href="/account/access-tokens/"' in html
    assert "Sign out" in html
    assert "<code>message</code>" in html and "Unknown query parameter" in html
    assert Client().post(DOCS).status_code == 405
