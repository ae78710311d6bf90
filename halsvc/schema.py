"""A small JSON Schema checker for RPC params and config tables.

It covers the subset our method and option schemas use, and names the field and the reason in
its message ("params.lease_ms: must be an integer ≥ 1"), which a generic validator's messages
do not do well. The OpenRPC document stays standard JSON Schema, so clients can use any validator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


class SchemaError(ValueError):
    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path, self.why = path, why


def _is(value: Any, type_name: str) -> bool:
    if isinstance(value, bool) and type_name in ("integer", "number"):
        return False
    if type_name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(type_name, (object,)))


def validate(schema: Mapping[str, Any], value: Any, path: str = "params") -> None:
    """Raise SchemaError naming the first field that breaks `schema`."""
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is(value, t) for t in names):
            raise SchemaError(path, f"must be {' or '.join(_article(t) for t in names)}")
    if "const" in schema and value != schema["const"]:
        raise SchemaError(path, f"must be {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(path, "must be one of " + ", ".join(repr(v) for v in schema["enum"]))
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise SchemaError(path, f"must be at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SchemaError(path, f"must be at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaError(path, f"must match {schema['pattern']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaError(path, f"must be ≥ {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaError(path, f"must be ≤ {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise SchemaError(path, f"must be > {schema['exclusiveMinimum']}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise SchemaError(path, f"must have at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise SchemaError(path, f"must have at most {schema['maxItems']} items")
        if isinstance(schema.get("items"), Mapping):
            for i, item in enumerate(value):
                validate(schema["items"], item, f"{path}[{i}]")
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                raise SchemaError(f"{path}.{name}", "is required")
        props: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in props:
                validate(props[name], item, f"{path}.{name}")
            elif extra is False:
                known = ", ".join(sorted(props)) or "none"
                raise SchemaError(f"{path}.{name}", f"is not a known field (known: {known})")
            elif isinstance(extra, Mapping):
                validate(extra, item, f"{path}.{name}")
    for key in ("oneOf", "anyOf"):
        if key in schema:
            errors: list[tuple[Mapping[str, Any], SchemaError]] = []
            for option in schema[key]:
                try:
                    validate(option, value, path)
                except SchemaError as exc:
                    errors.append((option, exc))
            matched = len(schema[key]) - len(errors)
            if matched == 0:
                # The form the value says it is (its `const` fields match, e.g. "type": "text")
                # is the one whose problem to name: "blocks[0].size: must be ≤ 3", not "fits no form".
                meant = [exc for option, exc in errors if _claims(option, value)]
                if len(meant) == 1 or len(errors) == 1:
                    raise (meant or [errors[0][1]])[0]
                raise SchemaError(path, "matches none of the allowed forms: " + "; ".join(
                    e.why if e.path == path else f"{e.path[len(path):].lstrip('.')}: {e.why}"
                    for _, e in errors[:3]))
            if key == "oneOf" and matched > 1:
                raise SchemaError(path, "matches more than one allowed form")
    if "not" in schema:
        try:
            validate(schema["not"], value, path)
        except SchemaError:
            pass
        else:
            raise SchemaError(path, schema.get("description", "is not allowed here"))


def _claims(option: Mapping[str, Any], value: Any) -> bool:
    """Whether `value` carries every `const` property of the form `option` (its discriminator)."""
    props = option.get("properties", {})
    consts = [(k, p["const"]) for k, p in props.items() if isinstance(p, Mapping) and "const" in p]
    return bool(consts) and isinstance(value, dict) and all(
        k in value and value[k] == c for k, c in consts)


def _article(type_name: str) -> str:
    return {"object": "an object", "array": "an array", "integer": "an integer", "null": "null"}.get(
        type_name, f"a {type_name}")
