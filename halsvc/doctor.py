"""`halctl doctor`: check the whole station and say, for each problem, how to fix it.

Every check is a function of its inputs (paths, environment, a daemon view, a statvfs…) and
returns a `Check`, so tests point them at a broken setup for real. `run_all` gathers the inputs
from the running daemon where it can (its config path, state dir, environment, uid), since what
matters is what the daemon sees, and falls back to this machine's defaults when it cannot.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import grp
import json
import os
import pathlib
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

PASS, WARN, FAIL = "pass", "warn", "fail"
RANK = {PASS: 0, WARN: 1, FAIL: 2}
PCSCD_SOCKET = "/run/pcscd/pcscd.comm"
SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
RULES_NAME = "70-halsvc.rules"
RULES_DIRS = ("/etc/udev/rules.d", "/run/udev/rules.d", "/usr/local/lib/udev/rules.d",
              "/usr/lib/udev/rules.d", "/lib/udev/rules.d")
PACKAGED_RULES = (pathlib.Path(__file__).resolve().parent.parent / "udev" / RULES_NAME,
                  pathlib.Path("/usr/share/halsvc/udev") / RULES_NAME)
FREE_WARN = 512 << 20
FREE_FAIL = 64 << 20
SERIAL_OPTIONS = ("port", "device", "path")  # driver options that name a device node


@dataclass
class Check:
    name: str
    status: str
    summary: str
    fix: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def worst(checks: Iterable[Check]) -> str:
    return max((c.status for c in checks), key=RANK.__getitem__, default=PASS)


def can_use(st: os.stat_result, uid: int, gids: Iterable[int]) -> bool:
    """Read and write access by the mode bits, as the kernel decides for a non-root caller."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        return st.st_mode & 0o600 == 0o600
    if st.st_gid in set(gids):
        return st.st_mode & 0o060 == 0o060
    return st.st_mode & 0o006 == 0o006


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# --- the daemon -----------------------------------------------------------------------------------
@dataclass
class DaemonView:
    """What the doctor could learn from the daemon (hal.status, diag.info)."""

    socket: str
    reachable: bool = False
    error: str | None = None
    permission_denied: bool = False
    status: dict[str, Any] | None = None
    info: dict[str, Any] | None = None


def ask_daemon(path: str, timeout: float = 10.0) -> DaemonView:
    from halsvc.client import Client, DaemonUnreachable, RpcError

    view = DaemonView(path)
    try:
        with Client(path, timeout=timeout) as hal:
            view.status = hal.call("hal.status")
            view.reachable = True
            try:
                view.info = hal.call("diag.info")
            except RpcError as exc:  # a kiosk-role user: local checks only
                view.error = f"diag.info: {exc.reason}"
    except PermissionError as exc:
        view.permission_denied, view.error = True, exc.strerror
    except (DaemonUnreachable, ConnectionError, OSError) as exc:
        view.error = str(exc)
    return view


def check_daemon(view: DaemonView) -> Check:
    if view.reachable and view.status is not None:
        st = view.status
        n = len(st.get("devices", []))
        return Check("daemon", PASS, f"halsvc {st.get('version')} answers on {view.socket}, up "
                     f"{st.get('uptime_s', 0):.0f}s, {n} device(s), you are {st.get('role')}")
    if view.permission_denied:
        return Check("daemon", FAIL, f"no permission to connect to {view.socket}",
                     "join the socket's group (see the socket check) and log in again")
    return Check("daemon", FAIL, f"halsvc does not answer on {view.socket}: {view.error}",
                 "systemctl status halsvc.socket halsvc; journalctl -u halsvc -e; in a checkout: make run")


def _connects(path: str) -> OSError | None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(path)
        except OSError as exc:
            return exc
    return None


def check_socket(path: str, uid: int | None = None, gids: Iterable[int] = ()) -> Check:
    """The socket exists and `uid` (default: this process, by connecting for real) may use it."""
    gids = set(gids)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Check("socket", FAIL, f"no socket at {path}",
                     "systemctl enable --now halsvc.socket (or --socket PATH / HALSVC_SOCKET)")
    except PermissionError:
        return Check("socket", FAIL, f"cannot see {path}: a directory on the way is closed to you",
                     "join group halsvc: sudo usermod -aG halsvc $USER, then log in again")
    if not stat.S_ISSOCK(st.st_mode):
        return Check("socket", FAIL, f"{path} is not a socket", f"remove it and restart halsvc: rm {path}")
    mode = stat.S_IMODE(st.st_mode)
    group = _group_name(st.st_gid)
    where = f"{path} mode {mode:04o} owner uid {st.st_uid} group {group}"
    details = {"mode": f"{mode:04o}", "uid": st.st_uid, "group": group}
    who = os.getuid() if uid is None else uid
    refused = False
    if uid is None:
        error = _connects(path)
        allowed = not isinstance(error, PermissionError)
        refused = isinstance(error, ConnectionRefusedError)
    else:
        allowed = can_use(st, uid, gids)
    if not allowed:
        return Check("socket", FAIL, f"you (uid {who}) may not use {where}",
                     f"sudo usermod -aG {group} $USER and log in again (or the daemon's "
                     "daemon.socket_mode = \"0660\" / socket_group)", details)
    if refused:
        return Check("socket", FAIL, f"{where}: nobody listens (left by a daemon that died?)",
                     "systemctl restart halsvc.socket halsvc", details)
    if mode & 0o007:
        return Check("socket", WARN, f"{where}: every local user may connect",
                     'set daemon.socket_mode = "0660" and socket_group = "halsvc"', details)
    return Check("socket", PASS, f"{where}; you may connect", details=details)


def check_devices(view: DaemonView) -> Check:
    if view.status is None:
        return Check("devices", WARN, "device states unknown: the daemon does not answer",
                     "see the daemon check")
    bad: list[str] = []
    slow: list[str] = []
    for d in view.status.get("devices", []):
        if d["state"] in ("online", "busy"):
            continue
        (slow if d["state"] == "starting" else bad).append(f"{d['device']} ({d['kind']}) {d['state']}")
    n = len(view.status.get("devices", []))
    if bad:
        return Check("devices", FAIL, "not working: " + ", ".join(bad),
                     "halctl status; halctl devices --hardware (plugged in, recognised?); "
                     "halctl selftest DEVICE; cables and power")
    if slow:
        return Check("devices", WARN, "still starting: " + ", ".join(slow), "wait a moment, then run again")
    return Check("devices", PASS, f"all {n} device(s) online")


# --- PC/SC ----------------------------------------------------------------------------------------
def pcsc_readers(env: Mapping[str, str], timeout: float = 15.0) -> list[str]:
    """Reader names as pcscd lists them, asked from a child process: libpcsclite picks its socket
    from PCSCLITE_CSOCK_NAME once per process."""
    code = ("import json\nfrom smartcard.System import readers\n"
            "print(json.dumps([str(r) for r in readers()]))")
    out = subprocess.run([sys.executable, "-c", code], env=dict(env), capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no answer"])[-1]
        raise RuntimeError(last[-200:])
    return [str(r) for r in json.loads(out.stdout)]


def check_pcscd(env: Mapping[str, str], wanted: Iterable[str] = (), needed: bool = True,
                readers: Callable[[Mapping[str, str]], list[str]] = pcsc_readers) -> Check:
    """pcscd answers on its socket and shows the readers the config wants (`wanted`: reader name
    parts; empty: any reader)."""
    bad = FAIL if needed else WARN
    path = env.get("PCSCLITE_CSOCK_NAME") or PCSCD_SOCKET
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(path)
        except OSError as exc:
            return Check("pcscd", bad, f"pcscd does not answer on {path}: {exc.strerror}",
                         "systemctl enable --now pcscd.socket (package pcscd)"
                         + ("; unset PCSCLITE_CSOCK_NAME" if env.get("PCSCLITE_CSOCK_NAME") else ""))
    try:
        names = readers({**os.environ, **env})
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
        return Check("pcscd", bad, f"pcscd at {path} does not list readers: {exc}",
                     "systemctl restart pcscd; journalctl -u pcscd")
    missing = [w for w in wanted if not any(w in n for n in names)]
    if not names or missing:
        want = f" (config wants {', '.join(missing)})" if missing else ""
        shown = ", ".join(names) if names else "no reader"
        return Check("pcscd", bad, f"pcscd runs but shows {shown}{want}",
                     "plug the card reader in; lsusb; the reader needs a CCID driver (libccid)",
                     {"readers": names})
    return Check("pcscd", PASS, f"pcscd at {path}: {', '.join(names)}", details={"readers": names})


# --- Bluetooth ------------------------------------------------------------------------------------
async def bluez_adapters(bus_address: str, wait_s: float = 10.0) -> list[dict[str, Any]]:
    """Adapters (org.bluez.Adapter1) on the system bus at `bus_address`: path, address, powered."""
    import asyncio

    from dbus_fast import BusType, Message, MessageType
    from dbus_fast.aio import MessageBus

    bus = MessageBus(bus_address=bus_address, bus_type=BusType.SYSTEM)
    await asyncio.wait_for(bus.connect(), wait_s)
    try:
        reply = await asyncio.wait_for(bus.call(Message(
            destination="org.bluez", path="/", interface="org.freedesktop.DBus.ObjectManager",
            member="GetManagedObjects")), wait_s)
    finally:
        bus.disconnect()
    assert reply is not None
    if reply.message_type == MessageType.ERROR:
        raise LookupError(reply.error_name or "error")
    out = []
    for path, ifaces in sorted(reply.body[0].items()):
        adapter = ifaces.get("org.bluez.Adapter1")
        if adapter is not None:
            address = adapter["Address"].value if "Address" in adapter else None
            powered = bool(adapter["Powered"].value) if "Powered" in adapter else False
            out.append({"path": path, "address": address, "powered": powered})
    return out


def check_bluetooth(env: Mapping[str, str], needed: bool) -> Check:
    """A powered adapter on BlueZ, on the system bus the daemon uses. Only a warning when no BLE
    device is configured."""
    import asyncio

    bad = FAIL if needed else WARN
    address = env.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS
    try:
        adapters = asyncio.run(bluez_adapters(address))
    except LookupError as exc:
        return Check("bluetooth", bad, f"BlueZ is not on the system bus ({exc})",
                     "apt install bluez; systemctl enable --now bluetooth")
    except (OSError, TimeoutError, ValueError, EOFError, Exception) as exc:  # dbus_fast raises its own types
        return Check("bluetooth", bad, f"no D-Bus system bus at {address} ({type(exc).__name__})",
                     "systemctl status dbus" + ("; check DBUS_SYSTEM_BUS_ADDRESS"
                                                if env.get("DBUS_SYSTEM_BUS_ADDRESS") else ""))
    powered = [a for a in adapters if a["powered"]]
    if not adapters:
        return Check("bluetooth", bad, "BlueZ sees no Bluetooth adapter",
                     "plug the USB dongle in; rfkill list; dmesg | grep -i bluetooth")
    if not powered:
        names = ", ".join(a["path"] for a in adapters)
        return Check("bluetooth", bad, f"Bluetooth adapter {names} is powered off",
                     "rfkill unblock bluetooth; bluetoothctl power on", {"adapters": adapters})
    return Check("bluetooth", PASS, "powered: " + ", ".join(f"{a['path']} {a['address'] or ''}".strip()
                                                            for a in powered), details={"adapters": adapters})


# --- serial ports, udev ---------------------------------------------------------------------------
def device_nodes(devices: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, bool]]:
    """(device id, node path, hot-plugged) of every configured device that opens a device node."""
    out = []
    for d in devices:
        opts = d.get("options") or {}
        for key in SERIAL_OPTIONS:
            value = opts.get(key)
            if (isinstance(value, str) and value.startswith("/dev/")) or (
                    isinstance(value, str) and value.startswith("/") and key == "port"):
                out.append((str(d["device"]), value, bool(d.get("match"))))
                break
    return out


def check_serial(nodes: Iterable[tuple[str, str, bool]], uid: int, gids: Iterable[int]) -> Check:
    """Each configured port exists, is a character device and the daemon (uid, gids) may open it."""
    nodes = list(nodes)
    if not nodes:
        return Check("serial", PASS, "no device in the config opens a serial port")
    problems, fine = [], []
    fix = set()
    for dev, path, hotplug in nodes:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            problems.append((WARN if hotplug else FAIL, f"{dev}: {path} does not exist"))
            fix.add("plug the device in; halctl devices --hardware; ls -l /dev/halsvc/")
            continue
        except PermissionError:
            problems.append((FAIL, f"{dev}: {path} cannot be looked at"))
            continue
        if not stat.S_ISCHR(st.st_mode):
            problems.append((FAIL, f"{dev}: {path} is not a character device"))
            fix.add(f"fix the port option of {dev}")
            continue
        if not can_use(st, uid, gids):
            problems.append((FAIL, f"{dev}: {path} is {stat.S_IMODE(st.st_mode):04o} "
                             f"uid {st.st_uid} group {_group_name(st.st_gid)}; the daemon (uid {uid}) "
                             "may not open it"))
            fix.add("install the udev rules (they give group halsvc 0660); udevadm trigger")
            continue
        fine.append(f"{dev} {path}")
    if problems:
        level = worst(Check("", s, "") for s, _ in problems)
        return Check("serial", level, "; ".join(p for _, p in problems), "; ".join(sorted(fix)), {"ok": fine})
    return Check("serial", PASS, "ports present and accessible: " + ", ".join(fine))


def check_udev_rules(dirs: Iterable[str] = RULES_DIRS, packaged: Iterable[pathlib.Path] = PACKAGED_RULES,
                     group: str = "halsvc") -> Check:
    installed = [pathlib.Path(d) / RULES_NAME for d in dirs if (pathlib.Path(d) / RULES_NAME).is_file()]
    if not installed:
        return Check("udev", FAIL, f"{RULES_NAME} is not installed (looked in {', '.join(dirs)})",
                     f"make install (tools/install.sh), or cp udev/{RULES_NAME} /etc/udev/rules.d/ && "
                     "udevadm control --reload && udevadm trigger")
    reference = next((p for p in packaged if p.is_file()), None)
    here = installed[0]
    if reference is not None and here.read_bytes() != reference.read_bytes():
        return Check("udev", WARN, f"{here} differs from this version's rules ({reference})",
                     f"cp {reference} {here} && udevadm control --reload && udevadm trigger")
    try:
        grp.getgrnam(group)
    except KeyError:
        return Check("udev", WARN, f"{here} installed, but group {group} does not exist (devices stay "
                     "root's)",
                     "systemd-sysusers (the package's sysusers.d/halsvc.conf) or groupadd --system halsvc")
    return Check("udev", PASS, f"{here} installed" + (" and current" if reference else ""))


# --- config, clock, disk --------------------------------------------------------------------------
def check_config(path: str) -> Check:
    from halsvc.config import ConfigError, load

    try:
        config = load(path)
    except ConfigError as exc:
        if "cannot read" in str(exc) and "Permission" in str(exc):
            return Check("config", WARN, str(exc), "run halctl doctor as root (or a member of group halsvc)")
        return Check("config", FAIL, str(exc),
                     f"edit the key named above, then: halsvc --check-config {path}")
    return Check("config", PASS, f"{path}: valid, {len(config.devices)} device(s)")


class Timex(ctypes.Structure):
    """struct timex of <sys/timex.h> (Linux, LP64 and ILP32 alike: longs and ints in this order)."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long), ("tick", ctypes.c_long),
                ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
                ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
                ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
                ("_reserved", ctypes.c_int * 11)]


TIME_ERROR = 5
STA_UNSYNC = 0x0040


def kernel_clock() -> tuple[int, int, int]:
    """(adjtimex state, status bits, max error in µs): read only (modes = 0), no privilege needed,
    no systemd either; the kernel's own view of NTP sync."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    tx = Timex()
    rc = libc.adjtimex(ctypes.byref(tx))
    if rc < 0:
        raise OSError(ctypes.get_errno(), "adjtimex failed")
    return rc, tx.status, tx.maxerror


def check_clock(clock: Callable[[], tuple[int, int, int]] = kernel_clock) -> Check:
    try:
        state, status, maxerror_us = clock()
    except OSError as exc:
        return Check("clock", WARN, f"cannot ask the kernel about the clock: {exc}", "timedatectl status")
    if state == TIME_ERROR or status & STA_UNSYNC:
        return Check("clock", FAIL, "the clock is not synchronised (readings and receipts carry its time)",
                     "timedatectl set-ntp true; check that systemd-timesyncd or chrony reaches an NTP "
                     "server (timedatectl timesync-status)", {"state": state, "status": status})
    return Check("clock", PASS, f"synchronised, estimated error under {maxerror_us / 1000:.0f} ms",
                 details={"maxerror_us": maxerror_us})


def check_free_space(path: str, statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
                     warn_bytes: int = FREE_WARN, fail_bytes: int = FREE_FAIL) -> Check:
    """Room for the journals and usage figures in the state directory, and that it is writable."""
    p = pathlib.Path(path)
    target = p if p.exists() else next((q for q in p.parents if q.exists()), pathlib.Path("/"))
    try:
        st = statvfs(str(target))
    except OSError as exc:
        return Check("disk", FAIL, f"cannot look at {target}: {exc.strerror}", "check the mount")
    free = st.f_bavail * st.f_frsize
    inodes = st.f_favail
    text = f"{free / 1e6:.0f} MB free for {path}"
    details = {"free_bytes": free, "free_inodes": inodes}
    if not p.exists():
        return Check("disk", FAIL, f"state directory {path} does not exist ({text})",
                     "systemd-tmpfiles --create (StateDirectory=halsvc), or mkdir it", details)
    if free < fail_bytes or (inodes == 0 and st.f_files > 0):
        return Check("disk", FAIL, f"only {text}: journals and usage figures cannot be written",
                     f"free space on the file system of {path} (journalctl --vacuum-size=100M, old logs)",
                     details)
    if free < warn_bytes:
        return Check("disk", WARN, f"{text}, getting low", f"free space on the file system of {path}",
                     details)
    return Check("disk", PASS, text, details=details)


# --- all of it ------------------------------------------------------------------------------------
def run_all(socket_path: str, config_path: str | None = None) -> list[Check]:
    view = ask_daemon(socket_path)
    info = view.info or {}
    env = dict(info.get("env") or {k: v for k, v in os.environ.items()
                                   if k in ("PCSCLITE_CSOCK_NAME", "DBUS_SYSTEM_BUS_ADDRESS")})
    cfg_path = (config_path or info.get("config_path") or os.environ.get("HALSVC_CONFIG")
                or "/etc/halsvc/halsvc.toml")
    devices = info.get("devices")
    state_dir = info.get("state_dir")
    if devices is None or state_dir is None:  # no daemon view: read the config ourselves
        with contextlib.suppress(Exception):
            from halsvc.config import load

            cfg = load(cfg_path)
            devices = [{"device": d.id, "kind": d.kind, "options": d.options, "match": d.match}
                       for d in cfg.devices]
            state_dir = str(cfg.state_dir)
    devices = devices or []
    kinds = {d.get("kind") for d in devices}
    daemon_uid = int(info.get("uid", 0)) if info else os.getuid()
    daemon_gids = {int(g) for g in info.get("groups", [])} | ({int(info["gid"])} if "gid" in info else set())
    wanted_readers = [d["options"]["reader"] for d in devices
                      if d.get("kind") == "idcard" and (d.get("options") or {}).get("reader")]
    return [
        check_daemon(view),
        check_socket(socket_path),
        check_devices(view),
        check_config(cfg_path),
        check_pcscd(env, wanted_readers, needed="idcard" in kinds),
        check_bluetooth(env, needed=bool(kinds & {"health", "ble_health"})),
        check_serial(device_nodes(devices), daemon_uid, daemon_gids),
        check_udev_rules(),
        check_clock(),
        check_free_space(state_dir or "/var/lib/halsvc"),
    ]

