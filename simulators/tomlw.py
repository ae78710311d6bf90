"""A minimal TOML writer for the station's generated config: scalars, lists and nested tables."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def dumps(doc: Mapping[str, Any], _prefix: str = "") -> str:
    """Each table's scalars, then its sub-tables as `[a.b]` headers, recursively."""
    out = "".join(f"{_key(k)} = {_value(v)}\n" for k, v in doc.items() if not isinstance(v, Mapping))
    for k, v in doc.items():
        if isinstance(v, Mapping):
            name = f"{_prefix}{_key(k)}"
            out += f"\n[{name}]\n" + dumps(v, f"{name}.")
    return out
