"""BICS's OpenAPI description as test data: its schemas, its examples, and a small validator.

The validator covers the part of JSON Schema that BICS's document uses (``type``, ``properties``,
``required``, ``items``, ``allOf``, ``$ref``, ``enum``, ``nullable``), following OpenAPI 3.0: a
value may be null only where the schema says ``nullable: true``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["PATHS", "SCHEMAS", "SPEC", "description_json", "example", "properties", "schema_errors"]

SPEC: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "bics-sms-v3-openapi.json").read_text()
)
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]
PATHS: dict[str, Any] = SPEC["paths"]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def example(node: dict[str, Any]) -> Any:
    """An example of the spec, decoded (BICS stores them as JSON strings)."""
    value = node["example"]
    return json.loads(value) if isinstance(value, str) else value


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return SCHEMAS[ref.rsplit("/", 1)[1]] if ref else schema


def properties(name: str) -> set[str]:
    """The property names of a schema of the spec, allOf included."""
    return set(_properties(SCHEMAS[name]))


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    schema = _resolve(schema)
    found = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        found |= _properties(part)
    return found


def _required(schema: dict[str, Any]) -> set[str]:
    schema = _resolve(schema)
    found = set(schema.get("required", []))
    for part in schema.get("allOf", []):
        found |= _required(part)
    return found


def _is_type(value: object, expected: str) -> bool:
    if isinstance(value, bool) and expected in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[expected])


def schema_errors(value: object, schema: dict[str, Any] | str, at: str = "$") -> list[str]:
    """What in ``value`` breaks ``schema`` (a schema node or a schema's name); [] when valid.

    Properties the schema does not name are errors too: the simulator and the client must not
    invent fields.
    """
    node = _resolve(SCHEMAS[schema] if isinstance(schema, str) else schema)
    if value is None:
        return [] if node.get("nullable") else [f"{at}: null"]
    expected = node.get("type") or ("object" if "allOf" in node else None)
    if expected is not None and not _is_type(value, expected):
        return [f"{at}: {type(value).__name__}, expected {expected}"]
    if "enum" in node and value not in node["enum"]:
        return [f"{at}: {value!r} not in {node['enum']}"]
    if isinstance(value, list):
        items = node.get("items", {})
        return [e for i, item in enumerate(value) for e in schema_errors(item, items, f"{at}[{i}]")]
    if isinstance(value, dict):
        return _object_errors(value, node, at)
    return []


def _object_errors(value: dict[str, Any], node: dict[str, Any], at: str) -> list[str]:
    known = _properties(node)
    errors = [f"{at}.{name}: missing" for name in sorted(_required(node) - set(value))]
    for name, item in value.items():
        if name not in known:
            errors.append(f"{at}.{name}: not in the schema")
        else:
            errors += schema_errors(item, known[name], f"{at}.{name}")
    return errors


def description_json(description: str, root: str) -> Any:
    """The JSON object under ``root`` that a markdown description shows (as BICS documents the
    inbound callback body inside the subscription's description)."""
    match = re.search(r"\{\s*\"" + re.escape(root) + r"\".*?\n  \}\n", description, re.DOTALL)
    if match is None:
        raise LookupError(root)
    return json.loads(match.group(0))
