"""halsvc.schema: a oneOf error names the problem of the form the value claims to be."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.printer.driver import PrinterDriver
from halsvc.schema import SchemaError, validate

PRINT_PARAMS: dict[str, Any] = dict(PrinterDriver.print_receipt.__rpc__.params)  # type: ignore[attr-defined]


def error(value: Any, schema: dict[str, Any] = PRINT_PARAMS) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        validate(schema, value)
    return info.value


def block(**b: Any) -> dict[str, Any]:
    return {"job_id": "j", "document": {"blocks": [{"type": "cut"}, b]}}


@pytest.mark.parametrize("b, path, why", [
    ({"type": "text", "text": "x", "size": 9}, "params.document.blocks[1].size", "must be ≤ 3"),
    ({"type": "text"}, "params.document.blocks[1].text", "is required"),
    ({"type": "text", "text": 5}, "params.document.blocks[1].text", "must be a string"),
    ({"type": "qr", "data": ""}, "params.document.blocks[1].data", "must be at least 1 characters"),
    ({"type": "rule", "style": "wavy"}, "params.document.blocks[1].style",
     "must be one of 'solid', 'dashed'"),
    ({"type": "cut", "colour": "red"}, "params.document.blocks[1].colour", "is not a known field (known: "
                                                                          "partial, type)"),
    ({"type": "columns", "label": "a"}, "params.document.blocks[1].value", "is required"),
    # No form claimed: the discriminator itself is named (checked before oneOf).
    ({"type": "txet"}, "params.document.blocks[1].type", None),
    ({"text": "x"}, "params.document.blocks[1].type", "is required"),
])
def test_a_bad_block_names_the_field_of_the_kind_it_claims(b: dict[str, Any], path: str,
                                                           why: str | None) -> None:
    exc = error(block(**b))
    assert exc.path == path, exc
    if why is not None:
        assert exc.why == why


def test_with_no_form_claimed_every_form_is_listed_with_its_own_field() -> None:
    schema = {"oneOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                        {"type": "object", "properties": {"b": {"type": "string"}}, "required": ["b"]}]}
    exc = error({"a": "x"}, schema)
    assert exc.path == "params"
    assert exc.why == "matches none of the allowed forms: a: must be an integer; b: is required"
    assert error({"job_id": "j"}).path == "params"  # neither document nor template
    assert error({"job_id": "j", "document": {"blocks": [{"type": "cut"}]}, "template": "health_slip"}).why \
        == "matches more than one allowed form"
