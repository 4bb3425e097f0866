"""The OpenAPI 3.1 document, generated from the route table and its pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from . import __version__
from .bodies import BODY_TIMEOUT_S
from .routes import Route
from .schemas import ErrorOut

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "Bad input; `error.field` names the field",
    "401": "No token, or not a valid one",
    "403": "This token's role may not use the route",
    "404": "No such resource, or not in your scope",
    "408": f"The body did not arrive within {BODY_TIMEOUT_S:g} s",
    "409": "Conflicts with existing data",
    "413": "Body larger than 1 MiB",
    "415": "Body is not of the media type the route takes",
}
_FORM = "application/x-www-form-urlencoded"


def _models(routes: tuple[Route, ...]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"ErrorOut": ErrorOut}
    for route in routes:
        for model in (route.body, route.query, route.response, route.form):
            if model is not None:
                found[model.__name__] = model
    return list(found.values())


def _operation(route: Route, refs: dict[Any, Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
        for name in _PARAM.findall(route.path)
    ]
    if route.query is not None:
        properties = route.query.model_json_schema(ref_template=_REF)["properties"]
        for name, info in route.query.model_fields.items():
            key = info.alias or name
            parameters.append(
                {"name": key, "in": "query", "required": info.is_required(), "schema": properties[key]}
            )
    operation: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": parameters,
        "responses": _responses(route, refs),
    }
    if route.body is not None:
        schema = refs[(route.body, "validation")]
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if route.form is not None:
        schema = refs[(route.form, "validation")]
        operation["requestBody"] = {"required": True, "content": {_FORM: {"schema": schema}}}
    if route.roles:
        operation["security"] = [{"bearer": []}]
        operation["description"] = "Tokens: " + ", ".join(sorted(route.roles)) + "."
    return operation


def _responses(route: Route, refs: dict[Any, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "Success"}
    if route.response is not None:
        success["content"] = {"application/json": {"schema": refs[(route.response, "serialization")]}}
    elif route.media_type is not None:
        success["content"] = {route.media_type: {}}
    responses: dict[str, Any] = {str(route.status): success}
    error = {"content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorOut")}}}}
    for status, description in _ERRORS.items():
        needs_auth = status in ("401", "403")
        has_body = status in ("408", "413", "415")
        if (needs_auth and not route.roles) or (has_body and route.body is None and route.form is None):
            continue
        responses[status] = {"description": description, **error}
    for status, description in route.errors.items():
        responses[status] = {"description": description, **error}
    return dict(sorted(responses.items()))


def build(routes: tuple[Route, ...]) -> dict[str, Any]:
    models = _models(routes)
    modes: tuple[JsonSchemaMode, ...] = ("validation", "serialization")
    pairs = [(model, mode) for mode in modes for model in models]
    refs, schemas = models_json_schema(pairs, ref_template=_REF)
    components = dict(schemas.get("$defs", {}))
    for route in routes:
        if route.query is not None:
            components.update(route.query.model_json_schema(ref_template=_REF).get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = _PARAM.sub(r"{\1}", route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "alertnet",
            "version": __version__,
            "description": "Neighbourhood SMS alert network: admin API, signals and Twilio webhooks.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
