"""The OpenAPI 3.1 document of the service, generated from the code: each endpoint carries
its :class:`Operation` (summary, query parameters, request and response schemas, by name
from :mod:`.schemas`), and :func:`document` walks the application's route table: the
paths, methods and path parameters are the router's own, the schemas the very objects the
tests check real decisions and exports against. Nothing is written twice, so the document
cannot describe a route that does not exist, or miss one that does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
from starlette.routing import BaseRoute, Route

from .schemas import COMPONENTS

F = TypeVar("F", bound=Callable[..., Any])

JSON = "application/json"
#: the attribute of an endpoint function that holds its :class:`Operation`
_ATTRIBUTE = "__idrules_operation__"
#: what every operation may answer besides its own responses, by the service's own rules
_BODY_ERRORS = {400: "the body is not one JSON object", 413: "the body is over 64 KiB"}
_AUTH_ERROR = {401: "no `Authorization: Bearer <token>`, or a wrong token"}


@attrs.frozen
class Query:
    """One query parameter (text)."""

    name: str
    description: str


@attrs.frozen
class Operation:
    """What the document says of one endpoint: ``responses`` maps a status to its
    description and the name of its JSON schema (None: not JSON); ``body``, the schema name
    of a JSON request body; ``public``: served without the API token."""

    summary: str
    responses: Mapping[int, tuple[str, str | None]]
    body: str | None = None
    query: tuple[Query, ...] = ()
    public: bool = False
    #: the media type of the 200 answer when it is not JSON
    media_type: str = JSON


def operation(spec: Operation) -> Callable[[F], F]:
    """Attach ``spec`` to an endpoint function."""

    def mark(func: F) -> F:
        setattr(func, _ATTRIBUTE, spec)
        return func

    return mark


def operation_of(route: Route) -> Operation:
    """The :class:`Operation` of a route's endpoint (every route must have one)."""
    spec = getattr(route.endpoint, _ATTRIBUTE, None)
    if not isinstance(spec, Operation):
        raise TypeError(f"route {route.path} has no @operation: the document would miss it")
    return spec


def document(
    routes: Iterable[BaseRoute], *, title: str, version: str, auth: bool
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``; ``auth``: the server wants a bearer token."""
    paths: dict[str, Any] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        spec = operation_of(route)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            item = paths.setdefault(route.path, {})
            item[method.lower()] = _operation(route, spec, auth)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": COMPONENTS},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc


def _operation(route: Route, spec: Operation, auth: bool) -> dict[str, Any]:
    """One operation object: its parameters, body and every answer it may give."""
    name = getattr(route.endpoint, "__name__", route.path)
    params = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in route.param_convertors
    ]
    params += [
        {"name": q.name, "in": "query", "required": False, "description": q.description,
         "schema": {"type": "string"}}
        for q in spec.query
    ]  # fmt: skip
    answers = dict(spec.responses)
    if spec.body is not None:
        answers.update({k: (v, "Error") for k, v in _BODY_ERRORS.items()})
    if auth and not spec.public:
        answers.update({k: (v, "Error") for k, v in _AUTH_ERROR.items()})
    op: dict[str, Any] = {
        "operationId": name,
        "summary": spec.summary,
        "responses": {
            str(status): _response(status, text, schema, spec.media_type)
            for status, (text, schema) in sorted(answers.items())
        },
    }
    if params:
        op["parameters"] = params
    if spec.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{spec.body}"}}},
        }
    if auth and spec.public:
        op["security"] = []
    return op


def _response(status: int, text: str, schema: str | None, media_type: str) -> dict[str, Any]:
    if schema is None:  # described in words only: Prometheus' text, the document itself
        return {"description": text, "content": {media_type: {"schema": {}}}}
    content = {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    return {"description": text, "content": content}
