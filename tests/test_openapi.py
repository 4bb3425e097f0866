"""The OpenAPI document covers every route and is built from the models the handlers use."""

from __future__ import annotations

import re
from typing import Any

from alertnet.routes import ROUTES

from .conftest import Client, call


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if "$ref" in node else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


async def test_every_route_documented(client: Client) -> None:
    """Each route of the table has an operation, with its body schema and security."""
    doc = await call(client, "GET", "/api/openapi.json", headers={}, expect=200)
    assert doc["openapi"] == "3.1.0"
    for route in ROUTES:
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path)
        operation = doc["paths"][path][route.method.lower()]
        assert str(route.status) in operation["responses"]
        assert ("requestBody" in operation) == (route.body is not None or route.form is not None)
        assert ("security" in operation) == bool(route.roles)
        assert set(route.errors) <= set(operation["responses"])


async def test_the_webhooks_document_twilios_form(client: Client) -> None:
    """A client (or a fuzzer) learns from the document what Twilio posts, and that it is signed."""
    doc = await call(client, "GET", "/api/openapi.json", headers={}, expect=200)
    for path, fields in (
        ("/sms/inbound", {"MessageSid", "From"}),
        ("/sms/status", {"MessageSid", "MessageStatus"}),
    ):
        operation = doc["paths"][path]["post"]
        form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
        name = form["$ref"].removeprefix("#/components/schemas/")
        assert set(doc["components"]["schemas"][name]["required"]) == fields
        assert "403" in operation["responses"]


async def test_all_refs_resolve(client: Client) -> None:
    """No $ref points at a schema that is not in the document."""
    doc = await call(client, "GET", "/api/openapi.json", headers={}, expect=200)
    names = set(doc["components"]["schemas"])
    refs = _refs(doc)
    assert refs
    assert {ref.removeprefix("#/components/schemas/") for ref in refs} <= names


async def test_body_schema_matches_validation(client: Client) -> None:
    """The documented group body is the one the handler validates: same fields, same required."""
    doc = await call(client, "GET", "/api/openapi.json", headers={}, expect=200)
    schema = doc["components"]["schemas"]["GroupIn"]
    assert set(schema["properties"]) == {"name", "join_code", "join_policy", "escalation"}
    assert set(schema["required"]) == {"name", "join_code"}
    assert schema["additionalProperties"] is False
