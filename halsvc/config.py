"""The daemon's one TOML config file, validated at start with messages naming the key and line."""

from __future__ import annotations

import grp
import importlib
import os
import pathlib
import pwd
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drivers.base import Driver
from halsvc.schema import SchemaError, validate

ROLES = ("kiosk", "technician", "admin")
ROLE_RANK = {"public": 0, "kiosk": 1, "technician": 2, "admin": 3}

DAEMON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "socket": {"type": "string", "description": "path of the RPC socket"},
        "socket_mode": {"type": "string", "pattern": "^0?[0-7]{3}$", "description": "octal, e.g. \"0660\""},
        "socket_group": {"type": "string", "description": "group owning the socket"},
        "state_dir": {"type": "string", "description": "durable state (journals, job ids, usage)"},
        "log_level": {"enum": ["debug", "info", "warning", "error"]},
        "max_message_bytes": {"type": "integer", "minimum": 1024},
        "send_buffer_bytes": {"type": "integer", "minimum": 4096},
        "max_connections": {"type": "integer", "minimum": 1},
        "max_inflight": {"type": "integer", "minimum": 1},
        "shutdown_timeout_s": {"type": "number", "minimum": 0},
    },
}
ROLE_RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "uids": {"type": "array", "items": {"type": ["integer", "string"]}},
        "gids": {"type": "array", "items": {"type": ["integer", "string"]}},
    },
}
BRIDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enabled": {"type": "boolean", "description": "serve the WebSocket bridge (default false)"},
        "port": {"type": "integer", "minimum": 0, "maximum": 65535,
                 "description": "TCP port on 127.0.0.1 (default 8765; 0: any free port)"},
        "origins": {"type": "array", "items": {"type": "string", "pattern": "^https?://[^/]+$"},
                    "description": "Origins admitted (default: the bridge's own page)"},
        "token_file": {"type": "string", "description": "per-boot token, created when absent "
                       "(default /run/halsvc/kiosk.token; the state dir on the simulated station)"},
        "token_group": {"type": "string", "description": "group that may read the token file"},
    },
}
TOP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "profile": {"enum": ["sim"], "description": "built-in defaults to start from"},
        "daemon": {"type": "object"},
        "roles": {"type": "object", "additionalProperties": False,
                  "properties": {r: {"type": "object"} for r in ROLES}},
        "devices": {"type": "object", "additionalProperties": {"type": "object"}},
        "usage": {"type": "object"},
        "bridge": {"type": "object"},
    },
}
DEVICE_ID = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
DEVICE_COMMON = {"driver", "match", "enabled"}


class ConfigError(Exception):
    """A config problem, phrased for the person who edits the file."""


@dataclass
class RoleRule:
    everyone: bool = False
    uids: set[int] = field(default_factory=set)
    gids: set[int] = field(default_factory=set)

    def admits(self, uid: int, gids: set[int]) -> bool:
        return self.everyone or uid in self.uids or bool(self.gids & gids)


@dataclass
class BridgeConfig:
    """The WebSocket bridge (halsvc/bridge.py): off unless `[bridge] enabled = true`."""

    enabled: bool = False
    port: int = 8765
    origins: list[str] = field(default_factory=list)
    token_file: str | None = None
    token_group: str | None = None

    def token_path(self, config: Config) -> pathlib.Path:
        if self.token_file:
            return pathlib.Path(self.token_file)
        if config.profile == "sim":
            return config.state_dir / "kiosk.token"
        return pathlib.Path("/run/halsvc/kiosk.token")


@dataclass
class DeviceConfig:
    id: str
    driver: str
    cls: type[Driver]
    options: dict[str, Any]
    match: dict[str, str] | None = None  # udev selector for hot-plug

    @property
    def kind(self) -> str:
        return self.cls.kind


@dataclass
class Config:
    path: str = "<built-in>"
    profile: str | None = None
    socket: str | None = None
    socket_mode: int = 0o660
    socket_group: str | None = None
    state_dir: pathlib.Path = pathlib.Path("/var/lib/halsvc")
    log_level: str = "info"
    max_message_bytes: int = 1 << 20
    send_buffer_bytes: int = 4 << 20
    max_connections: int = 1024
    max_inflight: int = 64
    shutdown_timeout_s: float = 4.0
    roles: dict[str, RoleRule] = field(default_factory=dict)
    devices: list[DeviceConfig] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)

    def role_of(self, uid: int, gids: set[int]) -> str:
        """The highest role the caller's uid or groups are granted; root is always admin."""
        if uid == 0:
            return "admin"
        for role in reversed(ROLES):
            rule = self.roles.get(role)
            if rule and rule.admits(uid, gids):
                return role
        return "public"


def sim_profile() -> dict[str, Any]:
    """The simulated station's defaults: its owner administers it, every local user is a kiosk."""
    return {
        "daemon": {"state_dir": "run/state", "socket_mode": "0660"},
        "roles": {"admin": {"uids": [os.getuid()]}, "kiosk": {"uids": ["*"]}},
    }


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def line_of(text: str, dotted: str) -> int | None:
    """Best-effort line number of a dotted key in TOML source (tables and plain keys)."""
    parts = dotted.split(".")
    table: list[str] = []
    best: int | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("[") and not line.startswith("[["):
            table = [p.strip().strip('"') for p in line.strip("[]").split(".")]
            if table == parts[: len(table)] and (best is None or len(table) > 0):
                best = n if table == parts else best
            continue
        m = re.match(r'^"?([A-Za-z0-9_-]+)"?\s*=', line)
        if m:
            key_path = [*table, m.group(1)]
            if key_path == parts[: len(key_path)]:
                best = n
    return best


def _error(path: str, text: str, dotted: str, why: str) -> ConfigError:
    line = line_of(text, dotted)
    where = f"{path}:{line}" if line else path
    return ConfigError(f"{where}: {dotted}: {why}")


def _ids(values: list[Any], kind: str) -> tuple[bool, set[int]]:
    everyone, out = False, set()
    for v in values:
        if v == "*":
            everyone = True
        elif isinstance(v, int):
            out.add(v)
        else:
            try:
                out.add(pwd.getpwnam(v).pw_uid if kind == "uids" else grp.getgrnam(v).gr_gid)
            except KeyError:
                raise ValueError(f"no such {'user' if kind == 'uids' else 'group'} {v!r}") from None
    return everyone, out


def load_driver(name: str) -> type[Driver]:
    module = importlib.import_module(f"drivers.{name}")
    cls = getattr(module, "DRIVER", None)
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise ImportError(f"drivers.{name} has no DRIVER class")
    return cls


def parse(text: str, path: str = "<string>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        validate(TOP_SCHEMA, raw, "config")
    except SchemaError as exc:
        dotted = exc.path.removeprefix("config.")
        raise _error(path, text, dotted, exc.why) from None
    profile = raw.get("profile")
    doc = _merge(sim_profile(), raw) if profile == "sim" else raw
    cfg = Config(path=path, profile=profile)

    daemon = doc.get("daemon", {})
    try:
        validate(DAEMON_SCHEMA, daemon, "daemon")
    except SchemaError as exc:
        raise _error(path, text, exc.path, exc.why) from None
    for key, value in daemon.items():
        if key == "socket_mode":
            cfg.socket_mode = int(value, 8)
        elif key == "state_dir":
            cfg.state_dir = pathlib.Path(value)
        else:
            setattr(cfg, key, value)

    for role, rule in doc.get("roles", {}).items():
        try:
            validate(ROLE_RULE_SCHEMA, rule, f"roles.{role}")
            any_uid, uids = _ids(rule.get("uids", []), "uids")
            any_gid, gids = _ids(rule.get("gids", []), "gids")
        except SchemaError as exc:
            raise _error(path, text, exc.path, exc.why) from None
        except ValueError as exc:
            raise _error(path, text, f"roles.{role}", str(exc)) from None
        cfg.roles[role] = RoleRule(any_uid or any_gid, uids, gids)

    for dev_id, table in doc.get("devices", {}).items():
        where = f"devices.{dev_id}"
        if not DEVICE_ID.match(dev_id):
            raise _error(path, text, where, "device ids are lower-case letters, digits and _ (e.g. printer0)")
        if table.get("enabled", True) is False:
            continue
        name = table.get("driver")
        if not isinstance(name, str):
            raise _error(path, text, f"{where}.driver", "is required (e.g. driver = \"printer\")")
        try:
            cls = load_driver(name)
        except ImportError as exc:
            raise _error(path, text, f"{where}.driver", f"unknown driver {name!r} ({exc})") from None
        options = {k: v for k, v in table.items() if k not in DEVICE_COMMON}
        try:
            validate(cls.options_schema, options, where)
        except SchemaError as exc:
            raise _error(path, text, exc.path, exc.why) from None
        match = table.get("match")
        if match is not None and not (isinstance(match, dict)
                                      and all(isinstance(v, str) for v in match.values())):
            raise _error(path, text, f"{where}.match", "must be a table of udev property = string")
        cfg.devices.append(DeviceConfig(dev_id, name, cls, options, match))
    cfg.usage = dict(doc.get("usage", {}))
    _check_usage(path, text, cfg.usage)
    bridge = doc.get("bridge", {})
    try:
        validate(BRIDGE_SCHEMA, bridge, "bridge")
    except SchemaError as exc:
        raise _error(path, text, exc.path, exc.why) from None
    cfg.bridge = BridgeConfig(**bridge)
    return cfg


def _check_usage(path: str, text: str, usage: dict[str, Any]) -> None:
    from halsvc.usage import USAGE_SCHEMA  # the usage figures own their options

    try:
        validate(USAGE_SCHEMA, usage, "usage")
    except SchemaError as exc:
        raise _error(path, text, exc.path, exc.why) from None
    if "timezone" in usage:
        try:
            zoneinfo.ZoneInfo(usage["timezone"])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise _error(path, text, "usage.timezone", f"unknown time zone {usage['timezone']!r}") from None


def load(path: str | os.PathLike[str]) -> Config:
    p = pathlib.Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: config is not UTF-8") from None
    return parse(text, str(p))
