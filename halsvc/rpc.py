"""JSON-RPC 2.0 framing and envelope checks, independent of transport and dispatch."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drivers.base import HalError

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    -32700, -32600, -32601, -32602, -32603)
_NO_ID = object()  # a notification: the "id" member is absent (null is a real id)


class RpcFault(Exception):
    """A JSON-RPC level error (parse, invalid request/params, method not found, internal)."""

    def __init__(self, code: int, message: str, reason: str, **data: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.reason, self.data = code, message, reason, data

    def to_error(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": {"reason": self.reason, **self.data}}


@dataclass
class Request:
    method: str
    params: dict[str, Any]
    id: Any = _NO_ID

    @property
    def is_notification(self) -> bool:
        return self.id is _NO_ID


def decode_line(line: bytes) -> Any:
    """Bytes of one line → the JSON value. Raises RpcFault(-32700) on anything unparsable."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RpcFault(PARSE_ERROR, f"not UTF-8 (byte {exc.start})", "parse_error") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError also covers integers beyond Python's digit limit.
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "too deeply nested or too large a number"
        raise RpcFault(PARSE_ERROR, f"not valid JSON: {why}", "parse_error") from None


def parse_request(obj: Any) -> Request:
    """A decoded JSON value → Request, or RpcFault(-32600/-32602) saying what is wrong.

    The fault carries the request's id when one could be read, so the answer can echo it.
    """
    if not isinstance(obj, dict):
        raise RpcFault(INVALID_REQUEST, "a request must be a JSON object", "invalid_request")
    rid = obj.get("id", _NO_ID)
    if rid is not _NO_ID and (isinstance(rid, bool) or not isinstance(rid, str | int | float | type(None))):
        raise RpcFault(INVALID_REQUEST, "id must be a string, a number or null", "invalid_request")
    ctx_id = None if rid is _NO_ID else rid
    if obj.get("jsonrpc") != "2.0":
        raise RpcFault(INVALID_REQUEST, 'jsonrpc must be "2.0"', "invalid_request", id=ctx_id)
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise RpcFault(INVALID_REQUEST, "method must be a non-empty string", "invalid_request", id=ctx_id)
    extra = set(obj) - {"jsonrpc", "method", "params", "id"}
    if extra:
        raise RpcFault(INVALID_REQUEST, f"unknown member {sorted(extra)[0]!r}", "invalid_request", id=ctx_id)
    params = obj.get("params", {})
    if not isinstance(params, dict):
        raise RpcFault(INVALID_PARAMS, "params must be an object (by-name)", "invalid_params",
                       id=ctx_id, field="params")
    return Request(method, params, rid)


def response(rid: Any, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def error_response(rid: Any, error: RpcFault | HalError) -> dict[str, Any]:
    err = error.to_error()
    err["data"].pop("id", None)
    return {"jsonrpc": "2.0", "id": rid, "error": err}


def encode(msg: Any) -> bytes:
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode() + b"\n"
