"""The JSON API's docs page at /api/v1/docs: ftdash's own page (its header, landmarks, dark mode,
no script), rendered from the OpenAPI schema django-ninja generates (the one served at
/api/v1/openapi.json), so it lists every operation as the code declares it. Public, as the
schema is: it says nothing about anyone's jobs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_safe

from jobs.views.api import api

METHOD_ORDER = ["get", "post", "put", "patch", "delete"]
WHERE = {"query": "query", "path": "path", "header": "header", "cookie": "cookie"}


@dataclass
class Piece:
    """A run of text; `code` for `…` in a description, `ref` for a schema's name to link to."""

    text: str
    code: bool = False
    ref: str = ""


@dataclass
class Field:
    name: str
    where: str
    required: bool
    type: list[Piece]
    description: list[Piece]
    notes: list[str] = field(default_factory=list)


@dataclass
class Answer:
    status: str
    description: str
    type: list[Piece]


@dataclass
class Operation:
    anchor: str
    method: str
    path: str
    summary: str
    description: list[list[Piece]]
    parameters: list[Field]
    body: list[Piece]
    body_fields: list[Field]
    answers: list[Answer]
    needs_token: bool


@dataclass
class Shape:
    name: str
    anchor: str
    description: list[Piece]
    fields: list[Field]


def text_pieces(text: str) -> list[Piece]:
    """`code` spans of a description as code, the rest as text (both escaped by the template)."""
    parts = re.split(r"`([^`]*)`", text or "")
    return [Piece(part, code=bool(i % 2)) for i, part in enumerate(parts) if part]


def paragraphs(text: str) -> list[list[Piece]]:
    """A docstring's paragraphs (its line breaks inside one paragraph are spaces)."""
    blocks = re.split(r"\n\s*\n", (text or "").strip())
    return [text_pieces(" ".join(block.split())) for block in blocks if block.strip()]


def shape_anchor(name: str) -> str:
    return f"shape-{name}"


def type_pieces(schema: dict[str, Any]) -> list[Piece]:
    """A JSON Schema's type in words: `string`, `integer or null`, `list of JobOut`…"""
    if not schema:
        return [Piece("any")]
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return [Piece(name, ref=shape_anchor(name))]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            pieces: list[Piece] = []
            for i, option in enumerate(schema[key]):
                if i:
                    pieces.append(Piece(" or "))
                pieces.extend(type_pieces(option))
            return pieces
    kind = schema.get("type")
    if isinstance(kind, list):
        return [Piece(" or ".join(kind))]
    if kind == "array":
        return [Piece("list of "), *type_pieces(schema.get("items", {}))]
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return [Piece("object of "), *type_pieces(schema["additionalProperties"])]
    if kind is None and "allOf" in schema and len(schema["allOf"]) == 1:
        return type_pieces(schema["allOf"][0])
    text = kind or "any"
    if schema.get("format"):
        text += f" ({schema['format']})"
    return [Piece(text)]


def _characters(count: int) -> str:
    return f"{count} character" if count == 1 else f"{count} characters"


def _bounds(schema: dict[str, Any]) -> list[str]:
    notes = []
    for option in [schema, *schema.get("anyOf", [])]:
        if "enum" in option:
            notes.append("one of " + ", ".join(map(str, option["enum"])))
        if "minLength" in option:
            notes.append(f"at least {_characters(option['minLength'])}")
        if "maxLength" in option:
            notes.append(f"at most {_characters(option['maxLength'])}")
        if "minimum" in option:
            notes.append(f"at least {option['minimum']}")
        if "maximum" in option:
            notes.append(f"at most {option['maximum']}")
        if "pattern" in option:
            notes.append(f"matches {option['pattern']}")
    if "default" in schema and schema["default"] not in (None, ""):
        notes.append(f"default {schema['default']}")
    return notes


def _parameter(parameter: dict[str, Any]) -> Field:
    schema = parameter.get("schema", {})
    return Field(
        name=parameter["name"],
        where=WHERE.get(parameter.get("in", ""), parameter.get("in", "")),
        required=bool(parameter.get("required")),
        type=type_pieces(schema),
        description=text_pieces(parameter.get("description") or schema.get("description", "")),
        notes=_bounds(schema),
    )


def _component(schemas: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in reference:
        return schemas.get(reference["$ref"].rsplit("/", 1)[-1], {})
    return reference


def _fields(schema: dict[str, Any], where: str = "body") -> list[Field]:
    required = set(schema.get("required", []))
    return [
        Field(
            name=name,
            where=where,
            required=name in required,
            type=type_pieces(prop),
            description=text_pieces(prop.get("description", "")),
            notes=_bounds(prop),
        )
        for name, prop in schema.get("properties", {}).items()
    ]


def _json_schema(content: dict[str, Any] | None) -> dict[str, Any] | None:
    if not content:
        return None
    media = content.get("application/json") or next(iter(content.values()), {})
    return media.get("schema")


def _answer_type(answer: dict[str, Any]) -> list[Piece]:
    schema = _json_schema(answer.get("content"))
    return type_pieces(schema) if schema else []


def _sort_status(status: str) -> tuple[int, str]:
    return (int(status), status) if status.isdigit() else (999, status)  # "default" last


def operations_of(schema: dict[str, Any]) -> list[Operation]:
    """Every operation of the OpenAPI schema, in the schema's path order."""
    schemas = schema.get("components", {}).get("schemas", {})
    found = []
    for path, item in schema.get("paths", {}).items():
        methods = sorted(
            (m for m in item if m in METHOD_ORDER),
            key=METHOD_ORDER.index,
        )
        for method in methods:
            op = item[method]
            body_schema = _json_schema(op.get("requestBody", {}).get("content"))
            # The keys are numbers in ninja's schema, strings once it is JSON.
            responses = {str(status): answer for status, answer in op.get("responses", {}).items()}
            answers = [
                Answer(status, answer.get("description", ""), _answer_type(answer))
                for status, answer in sorted(responses.items(), key=lambda pair: _sort_status(pair[0]))
            ]
            found.append(
                Operation(
                    anchor=op.get("operationId") or f"{method}-{path}",
                    method=method.upper(),
                    path=path,
                    summary=op.get("summary", ""),
                    description=paragraphs(op.get("description", "")),
                    parameters=[_parameter(p) for p in op.get("parameters", [])],
                    body=type_pieces(body_schema) if body_schema else [],
                    body_fields=_fields(_component(schemas, body_schema)) if body_schema else [],
                    answers=answers,
                    needs_token=bool(op.get("security", schema.get("security"))),
                )
            )
    return found


def shapes_of(schema: dict[str, Any]) -> list[Shape]:
    """The schema's named request and answer shapes, with their fields."""
    return [
        Shape(name, shape_anchor(name), text_pieces(body.get("description", "")), _fields(body, where=""))
        for name, body in schema.get("components", {}).get("schemas", {}).items()
    ]


@require_safe
def api_docs(request: HttpRequest) -> HttpResponse:
    schema = api.get_openapi_schema()
    error_shape = schema.get("components", {}).get("schemas", {}).get("ErrorOut", {})
    return TemplateResponse(
        request,
        "api_docs/api_docs.html",
        {
            "info": schema.get("info", {}),
            "intro": text_pieces(schema.get("info", {}).get("description", "")),
            "operations": operations_of(schema),
            "shapes": shapes_of(schema),
            "error_fields": _fields(error_shape),
            "schema_url": reverse("api-v1:openapi-json"),
            "jobs_url": request.build_absolute_uri(reverse("api-v1:api_jobs")),
            "per_minute": settings.FTDASH_API_REQUESTS_PER_MINUTE,
        },
    )
