"""Unknown query parameters refused: `?stauts=running` is a 422 that names the parameters the
endpoint takes, not a silent "all jobs" (a typo in a script shows at once). Applied to every
operation by `api.add_decorator` (jobs.views.api); the names come from each operation's own
declared query parameters (the ones the OpenAPI schema lists), never from a list kept by hand."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest

from jobs.views.api.errors import ApiError


def declared_query_names(operation) -> tuple[str, ...]:
    """The query parameters a ninja Operation declares, in order (pagination's included)."""
    names: list[str] = []
    for model in operation.models:
        if getattr(model, "__ninja_param_source__", None) != "query":
            continue
        flatten = getattr(model, "__ninja_flatten_map__", None)
        if flatten:
            names.extend(flatten)
        else:
            names.extend(field.alias or name for name, field in model.model_fields.items())
    return tuple(dict.fromkeys(names))


def _quoted(name: str) -> str:
    return f"“{name}”"


def unknown_query_error(unknown: list[str], allowed: tuple[str, ...]) -> ApiError:
    takes = f"this endpoint takes {', '.join(allowed)}." if allowed else "this endpoint takes no query parameters."
    noun = "parameter" if len(unknown) == 1 else "parameters"
    error = ApiError(422, f"Unknown query {noun} {', '.join(map(_quoted, unknown))}: {takes}"[:1000])
    error.errors = [{"location": f"query.{name}", "message": f"Unknown query parameter: {takes}"} for name in unknown]
    return error


def refuse_unknown_query(view_func: Callable[..., Any]) -> Callable[..., Any]:
    """An operation-mode ninja decorator: runs once the token is checked and the declared
    parameters are valid, and refuses any query parameter the operation does not declare."""
    operation = getattr(view_func, "_ninja_operation", None)
    if operation is None:  # not an operation's function: nothing to derive the names from
        raise TypeError(f"{view_func!r} is not a django-ninja operation's function")
    allowed = declared_query_names(operation)

    @functools.wraps(view_func)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        unknown = [name for name in request.GET if name not in allowed]
        if unknown:
            raise unknown_query_error(unknown, allowed)
        return view_func(request, *args, **kwargs)

    return checked
