"""Hot-plug: which configured device is plugged in right now, as udev sees it.

A `HotplugMonitor` holds one selector per configured device (the config's `match = {...}`)
and watches udev's netlink monitor on the event loop (`loop.add_reader`, no polling). Per
selector it calls `on_present(key, devnode, properties)` when a matching device node appears
and `on_absent(key)` when it goes; the two strictly alternate per key, so the registry can map
them onto `Driver.plugged()` / `Driver.unplugged()` directly. The first announcements come
from an enumeration of what is already plugged in, delivered on the loop right after `start()`.

Selector grammar (every entry must hold):
- an upper-case udev property, e.g. `ID_VENDOR_ID = "0483"`, `HALSVC_KIND = "scale"`,
  `ID_SERIAL_SHORT = "A10KZ3QX"`; the value is a shell-style pattern (`"ttyUSB*"`);
  USB ids also match when only the parent USB device carries them (no usb_id import);
- `symlink = "/dev/halsvc/scale-0"` (or `"halsvc/scale-0"`): one of the device's links;
- `SUBSYSTEM = "usb"` chooses the whole USB device (`/dev/bus/usb/...`, for libusb drivers);
  without SUBSYSTEM a selector looks at the nodes a driver opens, best first: tty, usbmisc
  (usblp), hidraw, gpio. When several nodes match (an FTDI dual port), the first by sysfs
  path wins; the others are listed by `hardware()`.

`list_hardware()` / `HotplugMonitor.hardware()` list what udev sees that the daemon could
drive, with the kind udev gave it (our rules' HALSVC_KIND) or the one its USB ids suggest,
and which selectors match it — for `halctl devices --hardware`. Hardware serial numbers are
not citizen data.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyudev

log = logging.getLogger("halsvc.hotplug")

OnPresent = Callable[[str, str, Mapping[str, str]], None]
OnAbsent = Callable[[str], None]

# Device nodes a driver opens, in the order a selector without SUBSYSTEM prefers them.
NODE_SUBSYSTEMS = ("tty", "usbmisc", "hidraw", "gpio")
WATCHED_SUBSYSTEMS = (*NODE_SUBSYSTEMS, "usb")
KINDS = ("idcard", "printer", "health", "scale", "payment", "gpio")

# What the USB ids of a device suggest when our udev rules are not installed; mirrors
# udev/70-halsvc.rules (tests/test_udev_rules.py keeps the two in step).
# (subsystem, idVendor, idProduct or None for any) -> kind
KNOWN_HARDWARE: dict[tuple[str, str, str | None], str] = {
    **{("tty", "0403", p): "scale" for p in ("6001", "6010", "6011", "6014", "6015")},  # FTDI
    **{("tty", "067b", p): "scale" for p in ("2303", "23a3")},  # Prolific
    **{("tty", "1a86", p): "scale" for p in ("7523", "5523")},  # WCH CH340/CH341
    **{("tty", "10c4", p): "scale" for p in ("ea60", "ea70")},  # Silicon Labs CP210x
    ("tty", "0b00", None): "payment",  # Ingenico
    ("tty", "11ca", None): "payment",  # Verifone
    ("hidraw", "0590", None): "health",  # Omron
    **{("usb", v, None): "printer" for v in ("04b8", "0519", "1504", "1d90", "154f", "0dd4")},
    ("usb", "0416", "5011"): "printer",
    ("usb", "0fe6", "811e"): "printer",
}
# Interface classes in ID_USB_INTERFACES (":ccsspp:") of a whole USB device.
USB_INTERFACE_KINDS = (("07", "printer"), ("0b", "idcard"))
SYMLINK_KEY = "symlink"
SUBSYSTEM_KEY = "SUBSYSTEM"


def guess_kind(subsystem: str, vendor_id: str | None, model_id: str | None,
               usb_interfaces: str | None = None, kernel_name: str = "") -> str | None:
    """The kind the rules would give a device, from its subsystem and USB ids."""
    if subsystem == "usbmisc" and kernel_name.startswith("lp"):
        return "printer"
    if subsystem == "gpio" and kernel_name.startswith("gpiochip"):
        return "gpio"
    vendor, model = (vendor_id or "").lower(), (model_id or "").lower()
    if vendor:
        kind = KNOWN_HARDWARE.get((subsystem, vendor, model)) or KNOWN_HARDWARE.get((subsystem, vendor, None))
        if kind:
            return kind
    if subsystem == "usb" and usb_interfaces:
        for klass, kind in USB_INTERFACE_KINDS:
            if f":{klass}" in usb_interfaces:
                return kind
    return None


@dataclass(frozen=True)
class DeviceSelector:
    """One configured device's `match = {...}` table."""

    key: str
    match: Mapping[str, str]

    def __post_init__(self) -> None:
        if not self.match:
            raise ValueError(f"{self.key}: an empty match would select any device")

    @property
    def subsystems(self) -> tuple[str, ...]:
        """Subsystems this selector may pick from, best first."""
        wanted = self.match.get(SUBSYSTEM_KEY)
        if wanted is None:
            return NODE_SUBSYSTEMS
        return tuple(s for s in WATCHED_SUBSYSTEMS if fnmatch.fnmatchcase(s, wanted)) or (wanted,)

    def matches(self, properties: Mapping[str, str], links: Iterable[str]) -> bool:
        for name, pattern in self.match.items():
            if name == SYMLINK_KEY:
                want = pattern if pattern.startswith("/") else "/dev/" + pattern
                if not any(fnmatch.fnmatchcase(link, want) for link in links):
                    return False
            elif name == SUBSYSTEM_KEY:
                continue  # decided by `subsystems`
            else:
                value = properties.get(name)
                if value is None or not fnmatch.fnmatchcase(value, pattern):
                    return False
        return True


@dataclass
class Candidate:
    sys_path: str
    subsystem: str
    devnode: str
    properties: dict[str, str]
    links: tuple[str, ...]


@dataclass
class _SelectorState:
    selector: DeviceSelector
    candidates: dict[str, Candidate] = field(default_factory=dict)
    announced: tuple[str, str] | None = None  # (sys_path, devnode) last given to on_present

    def best(self) -> Candidate | None:
        order = self.selector.subsystems
        if not self.candidates:
            return None
        def rank(c: Candidate) -> tuple[int, str]:
            return (order.index(c.subsystem) if c.subsystem in order else len(order), c.sys_path)

        return min(self.candidates.values(), key=rank)


def _selectors(selectors: Mapping[str, Mapping[str, str]] | Iterable[DeviceSelector]) -> list[DeviceSelector]:
    if isinstance(selectors, Mapping):
        return [DeviceSelector(key, dict(match)) for key, match in selectors.items()]
    return list(selectors)


def device_facts(device: pyudev.Device) -> tuple[dict[str, str], tuple[str, ...]]:
    """A device's udev properties, with the USB ids filled in from its USB parent when udev's
    usb_id import did not put them on the node itself, and its symlinks."""
    props = {str(k): str(v) for k, v in device.properties.items()}
    if "ID_VENDOR_ID" not in props or "ID_MODEL_ID" not in props:
        usb = device if device.device_type == "usb_device" else None
        if usb is None:
            try:
                usb = device.find_parent("usb", "usb_device")
            except (OSError, ValueError):  # the parent is gone already on a late remove
                usb = None
        if usb is not None:
            attrs = usb.attributes
            for prop, attr in (("ID_VENDOR_ID", "idVendor"), ("ID_MODEL_ID", "idProduct"),
                               ("ID_SERIAL_SHORT", "serial")):
                if prop not in props:
                    try:
                        props[prop] = attrs.asstring(attr).strip()
                    except (KeyError, OSError, UnicodeDecodeError):
                        pass
    links = tuple(device.device_links)
    return props, links


def _is_candidate(device: pyudev.Device) -> bool:
    if device.device_node is None:
        return False
    return device.subsystem != "usb" or device.device_type == "usb_device"


class HotplugMonitor:
    """Watches udev for the devices of the config's selectors.

    `selectors`: `{key: {udev property or "symlink": pattern}}` (or `DeviceSelector`s); the key
    is what the callbacks get back — the registry uses the device id.
    """

    def __init__(self, selectors: Mapping[str, Mapping[str, str]] | Iterable[DeviceSelector],
                 on_present: OnPresent, on_absent: OnAbsent, *,
                 context: pyudev.Context | None = None) -> None:
        self._states = {s.key: _SelectorState(s) for s in _selectors(selectors)}
        self._on_present = on_present
        self._on_absent = on_absent
        self._context = context or pyudev.Context()
        self._monitor: pyudev.Monitor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._initial: asyncio.Handle | None = None
        # Set once the initial enumeration has been delivered: the daemon may wait on it
        # before it tells systemd READY=1, so the first status a client sees is the true one.
        self.enumerated = asyncio.Event()

    @property
    def subsystems(self) -> tuple[str, ...]:
        wanted: set[str] = set()
        for state in self._states.values():
            wanted.update(state.selector.subsystems)
        known = tuple(s for s in WATCHED_SUBSYSTEMS if s in wanted)
        return known + tuple(sorted(wanted - set(WATCHED_SUBSYSTEMS)))

    def start(self) -> None:
        """Listen to udev and schedule the initial enumeration on the running loop.

        The monitor is listening before the enumeration runs, so nothing plugged in between is
        missed. The enumeration's callbacks run on a later loop iteration, after the tasks the
        caller has just created (the drivers' `run()`) had their first step.
        """
        if self._monitor is not None:
            return
        self._loop = asyncio.get_running_loop()
        if not self._states:
            self.enumerated.set()
            return  # nothing to watch: no netlink socket at all
        monitor = pyudev.Monitor.from_netlink(self._context)
        for subsystem in self.subsystems:
            monitor.filter_by(subsystem)
        monitor.start()
        self._monitor = monitor
        self._loop.add_reader(monitor.fileno(), self._on_readable)
        self._initial = self._loop.call_soon(self.rescan)

    def stop(self) -> None:
        if self._initial is not None:
            self._initial.cancel()
            self._initial = None
        if self._monitor is not None and self._loop is not None:
            self._loop.remove_reader(self._monitor.fileno())
        self._monitor = None

    def present(self) -> dict[str, str]:
        """Selector key → device node, for the selectors whose device is plugged in now."""
        return {key: s.announced[1] for key, s in self._states.items() if s.announced}

    # --- udev input -------------------------------------------------------------------------
    def rescan(self) -> None:
        """Rebuild every selector's view from udev's device database (start-up, or after the
        kernel dropped events because our socket buffer overflowed)."""
        self._initial = None
        for state in self._states.values():
            state.candidates.clear()
        for subsystem in self.subsystems:
            for device in self._context.list_devices(subsystem=subsystem):
                self._consider(device)
        for key in self._states:
            self._settle(key)
        self.enumerated.set()

    def _on_readable(self) -> None:
        monitor = self._monitor
        if monitor is None:
            return
        changed: set[str] = set()
        try:
            while (device := monitor.poll(timeout=0)) is not None:
                changed |= self._on_event(device)
        except OSError as exc:  # ENOBUFS: events were lost; the database still knows the truth
            log.warning("udev monitor: %s; rescanning", exc.strerror or exc,
                        extra={"reason": "udev_overflow"})
            self.rescan()
            return
        for key in changed:
            self._settle(key)

    def _on_event(self, device: pyudev.Device) -> set[str]:
        action = device.action
        sys_path = device.sys_path
        changed = self._forget(sys_path)
        if action == "move":
            old = device.properties.get("DEVPATH_OLD")
            if old:
                changed |= self._forget(self._context.sys_path + old)
        if action != "remove":
            changed |= self._consider(device)
        return changed

    def _forget(self, sys_path: str) -> set[str]:
        return {key for key, s in self._states.items() if s.candidates.pop(sys_path, None) is not None}

    def _consider(self, device: pyudev.Device) -> set[str]:
        if not _is_candidate(device):
            return set()
        props, links = device_facts(device)
        changed = set()
        for key, state in self._states.items():
            if device.subsystem in state.selector.subsystems and state.selector.matches(props, links):
                state.candidates[device.sys_path] = Candidate(
                    device.sys_path, device.subsystem, device.device_node, props, links)
                changed.add(key)
        return changed

    def _settle(self, key: str) -> None:
        """Tell the registry if the device chosen for `key` changed (absent before present)."""
        state = self._states[key]
        best = state.best()
        now = (best.sys_path, best.devnode) if best else None
        if now == state.announced:
            return
        if state.announced is not None:
            state.announced = None
            self._call(self._on_absent, key)
        if best is not None:
            state.announced = now
            self._call(self._on_present, key, best.devnode, dict(best.properties))

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:  # a failing registry callback must not stop hot-plug for the others
            log.exception("hot-plug callback %s%r failed", getattr(callback, "__name__", callback), args[:1])

    # --- listing ----------------------------------------------------------------------------
    def hardware(self) -> list[dict[str, Any]]:
        """What udev sees that the daemon could drive, with the selectors that match each."""
        return list_hardware([s.selector for s in self._states.values()], context=self._context,
                             chosen={s.announced[0]: k for k, s in self._states.items() if s.announced})


def list_hardware(selectors: Mapping[str, Mapping[str, str]] | Iterable[DeviceSelector] = (), *,
                  context: pyudev.Context | None = None,
                  chosen: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Every device node (and whole USB device) udev knows that has a halsvc kind — from our
    rules or guessed from its USB ids — or that a selector matches, sorted by kind and node.

    Each entry: `devnode`, `subsystem`, `kind` (or None), `kind_from` ("udev" | "usb_ids" |
    None), `vendor_id`, `model_id`, `vendor`, `model`, `serial`, `symlinks`, `sys_path`,
    `matched` (selector keys whose match table it satisfies) and `driving` (the key of the
    configured device that is using it now, or None).
    """
    context = context or pyudev.Context()
    sels = _selectors(selectors)
    out: list[dict[str, Any]] = []
    for subsystem in WATCHED_SUBSYSTEMS:
        for device in context.list_devices(subsystem=subsystem):
            if not _is_candidate(device):
                continue
            props, links = device_facts(device)
            kind_from: str | None = "udev" if props.get("HALSVC_KIND") else None
            kind = props.get("HALSVC_KIND") or guess_kind(
                subsystem, props.get("ID_VENDOR_ID"), props.get("ID_MODEL_ID"),
                props.get("ID_USB_INTERFACES"), device.sys_name)
            if kind and kind_from is None:
                kind_from = "usb_ids"
            matched = [s.key for s in sels if subsystem in s.subsystems and s.matches(props, links)]
            if kind is None and not matched:
                continue
            out.append({
                "devnode": device.device_node,
                "subsystem": subsystem,
                "kind": kind,
                "kind_from": kind_from,
                "vendor_id": props.get("ID_VENDOR_ID"),
                "model_id": props.get("ID_MODEL_ID"),
                "vendor": props.get("ID_VENDOR_FROM_DATABASE") or props.get("ID_VENDOR"),
                "model": props.get("ID_MODEL_FROM_DATABASE") or props.get("ID_MODEL"),
                "serial": props.get("ID_SERIAL_SHORT"),
                "symlinks": sorted(links),
                "sys_path": device.sys_path,
                "matched": matched,
                "driving": (chosen or {}).get(device.sys_path),
            })
    out.sort(key=lambda e: (e["kind"] or "~", e["devnode"]))
    return out
