"""BLE health devices (kind `health`, driver `ble_health`): blood-pressure cuffs, pulse
oximeters (standard PLX and BerryMed frames) and weight / body-composition scales, through
bleak on BlueZ.

One daemon device per Bluetooth adapter. The peripherals behind it are known from config (by
address or name pattern) or found by discovery, several of a kind. `health.measure` picks one
(the `address` param, else a connected one, else the first known or discovered of the kind),
connects with retry and backoff, sets the device clock, reads stored records over RACP (cuffs),
subscribes and answers with the reading; live values (cuff pressure, SpO2/pulse/pleth) go to
the caller as progress events. A link lost mid-measurement fails it with `link_lost` and the
device is reconnected in the background for the next resident.

Readings are citizen data: they reach only the caller (result and progress). Broadcast
`health.device` events carry the device's address, name, battery and link state only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakDBusError, BleakError
from dbus_fast import BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus

from drivers.base import Driver, HalError, OperationContext, rpc_method
from drivers.ble_health import readings
from drivers.ble_health.agent import AGENT_PATH, NoInputNoOutputAgent, register
from drivers.ble_health.session import LOST, Session
from protocols.errors import ProtocolError
from protocols.gatt_health import (
    BERRYMED_NOTIFY,
    BERRYMED_SERVICE,
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
    BODY_COMPOSITION_MEASUREMENT,
    BODY_COMPOSITION_SERVICE,
    INTERMEDIATE_CUFF_PRESSURE,
    PLX_CONTINUOUS,
    PLX_SPOT_CHECK,
    PULSE_OXIMETER_SERVICE,
    RECORD_ACCESS_CONTROL_POINT,
    WEIGHT_MEASUREMENT,
    WEIGHT_SCALE_SERVICE,
    berrymed,
    racp,
    uuid16,
)

log = logging.getLogger("halsvc.driver.ble_health")

KINDS = ("blood_pressure", "spo2", "weight", "body_composition")
# The services that offer each kind, as advertised.
KIND_SERVICES = {
    "blood_pressure": [uuid16(BLOOD_PRESSURE_SERVICE)],
    "spo2": [uuid16(PULSE_OXIMETER_SERVICE), BERRYMED_SERVICE],
    "weight": [uuid16(WEIGHT_SCALE_SERVICE)],
    "body_composition": [uuid16(BODY_COMPOSITION_SERVICE)],
}
SERVICE_KINDS = {s: k for k, services in KIND_SERVICES.items() for s in services}
BPM, ICP, RACP = (uuid16(BLOOD_PRESSURE_MEASUREMENT), uuid16(INTERMEDIATE_CUFF_PRESSURE),
                  uuid16(RECORD_ACCESS_CONTROL_POINT))
SPOT, CONT = uuid16(PLX_SPOT_CHECK), uuid16(PLX_CONTINUOUS)
WEIGHT, BODY = uuid16(WEIGHT_MEASUREMENT), uuid16(BODY_COMPOSITION_MEASUREMENT)

KNOWN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "address": {"type": "string", "pattern": "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"},
        "name": {"type": "string", "minLength": 1, "description": "advertised name or a glob (\"Omron*\")"},
        "kinds": {"type": "array", "items": {"type": "string", "enum": list(KINDS)}, "minItems": 1},
    },
    "anyOf": [{"required": ["address"]}, {"required": ["name"]}],
}

OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "adapter": {"type": "string", "pattern": "^hci[0-9]+$",
                    "description": "BlueZ adapter (default hci0)"},
        "known": {"type": "array", "items": KNOWN_SCHEMA,
                  "description": "devices of this station, by address or name pattern"},
        "discover": {"type": "boolean",
                     "description": "also use devices found by scanning for the kind's service "
                                    "(default true)"},
        "scan_timeout_ms": {"type": "integer", "minimum": 100,
                            "description": "how long to look for a device"},
        "connect_attempts": {"type": "integer", "minimum": 1,
                             "description": "connects tried per measurement"},
        "measure_timeout_ms": {"type": "integer", "minimum": 100,
                               "description": "default wait for a reading once connected"},
        "steady_frames": {"type": "integer", "minimum": 1,
                          "description": "BerryMed: valid frames in a row that make a reading"},
        "prefer_known_ms": {"type": "integer", "minimum": 0,
                            "description": "how long a scan waits for a configured device of the kind "
                                           "once only discovered ones are seen"},
        "racp_timeout_ms": {"type": "integer", "minimum": 100,
                            "description": "wait for the cuff's record access control point to answer"},
        "no_finger_ms": {"type": "integer", "minimum": 0,
                         "description": "BerryMed/PLX: no finger this long fails with no_finger"},
    },
}

DEVICE_INFO: dict[str, Any] = {
    "type": "object",
    "properties": {"address": {"type": "string"}, "name": {"type": "string"},
                   "battery_percent": {"type": ["integer", "null"]}},
}

MEASURE_PARAMS: dict[str, Any] = {
    "type": "object",
    "required": ["kind"],
    "additionalProperties": False,
    "properties": {
        "kind": {"type": "string", "enum": list(KINDS)},
        "address": {"type": "string", "minLength": 1,
                    "description": "the BLE device: its address or (a glob of) its name; default: the "
                                   "connected, else the first known, else the first discovered of the kind"},
        "height_m": {"type": "number", "exclusiveMinimum": 0.3, "maximum": 2.8,
                     "description": "the person's height, for BMI when the scale measures none"},
    },
}

MEASURE_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "device", "status"],
    "properties": {
        "kind": {"type": "string", "enum": list(KINDS)},
        "device": DEVICE_INFO,
        "timestamp": {"type": ["string", "null"], "description": "the device's clock (set on connect)"},
        "status": {"type": "array", "items": {"type": "string"},
                   "description": "status flags as words (body_movement, cuff_too_loose, irregular_pulse…)"},
        "systolic_mmhg": {"type": "number"}, "diastolic_mmhg": {"type": "number"},
        "mean_arterial_mmhg": {"type": "number"}, "pulse_bpm": {"type": "number"},
        "spo2_percent": {"type": "number"}, "perfusion_index_percent": {"type": "number"},
        "weight_kg": {"type": "number"}, "height_m": {"type": "number"}, "bmi": {"type": "number"},
        "body_fat_percent": {"type": "number"},
        "stored": {"type": "array", "items": {"type": "object"},
                   "description": "cuff readings taken before it connected (RACP), then deleted on the cuff"},
    },
}

ADDRESS_PARAMS: dict[str, Any] = {
    "type": "object",
    "required": ["address"],
    "additionalProperties": False,
    "properties": {"address": {"type": "string", "pattern": "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"}},
}


def _matches(entry: Mapping[str, Any], device: BLEDevice) -> bool:
    if "address" in entry and entry["address"].upper() != device.address.upper():
        return False
    return not ("name" in entry and not fnmatch.fnmatchcase(device.name or "", entry["name"]))


class BleHealthDriver(Driver):
    kind: ClassVar[str] = "health"
    options_schema: ClassVar[Mapping[str, Any]] = OPTIONS_SCHEMA
    backoff_cap: ClassVar[float] = 10.0

    def __init__(self, device_id: str, options: Mapping[str, Any], events: Any) -> None:
        super().__init__(device_id, options, events)
        self.adapter = str(self.options.get("adapter", "hci0"))
        self.adapter_path = f"/org/bluez/{self.adapter}"
        self.known: list[dict[str, Any]] = [dict(k) for k in self.options.get("known", [])]
        self.sessions: dict[str, Session] = {}
        self.bus: MessageBus | None = None
        self.agent = NoInputNoOutputAgent()
        self._scan_lock = asyncio.Lock()

    def _ms(self, key: str, default: int) -> float:
        return float(self.options.get(key, default)) / 1000.0

    # --- lifecycle -----------------------------------------------------------------------
    async def connect(self) -> None:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        self.bus = bus
        reply = await bus.call(Message(destination="org.bluez", path="/", member="GetManagedObjects",
                                       interface="org.freedesktop.DBus.ObjectManager"))
        if reply is None or reply.message_type == MessageType.ERROR:
            raise HalError("no_device", "BlueZ (org.bluez) is not running")
        objects = reply.body[0]
        adapter = objects.get(self.adapter_path, {}).get("org.bluez.Adapter1")
        if adapter is None:
            raise HalError("no_device", f"no Bluetooth adapter {self.adapter}")
        if not adapter["Powered"].value:
            raise HalError("hardware_error", f"Bluetooth adapter {self.adapter} is powered off")
        # Bonds BlueZ already holds (an earlier health.pair) are known devices, and so are links
        # a daemon before us left up (see _left_connected).
        for path, dev in self._bluez_devices(objects):
            if dev["Paired"].value or dev["Connected"].value:
                self._bluez_session(path, dev).paired |= bool(dev["Paired"].value)
        try:
            await register(bus, self.agent)
        except DBusError as exc:
            raise HalError("hardware_error", f"BlueZ refused our pairing agent ({exc.type})") from None
        bus.add_message_handler(self._on_bus_message)
        await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                               interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                               body=["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',"
                                     "arg0='org.bluez'"]))
        self._watch = asyncio.ensure_future(self._watch_bus(bus))
        self.set_state(adapter=self.adapter)

    def _bluez_devices(self, objects: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
        return [(path, ifaces["org.bluez.Device1"]) for path, ifaces in objects.items()
                if "org.bluez.Device1" in ifaces and path.startswith(self.adapter_path + "/")]

    def _bluez_session(self, path: str, dev: Mapping[str, Any]) -> Session:
        address = dev["Address"].value.upper()
        s = self.sessions.get(address)
        if s is None:
            name = dev["Name"].value if "Name" in dev else address
            uuids = list(dev["UUIDs"].value) if "UUIDs" in dev else []
            s = self._session(BLEDevice(address, name, {"path": path, "props": {}}), uuids)
        return s

    async def _left_connected(self) -> list[Session]:
        """Devices BlueZ holds connected with no client of ours: bluetoothd keeps a link up when
        the process that made it dies (a SIGKILLed daemon), and a connected device does not
        advertise, so no scan finds it; a new client uses the link as it is."""
        bus = self.bus
        if bus is None:
            return []
        reply = await bus.call(Message(destination="org.bluez", path="/", member="GetManagedObjects",
                                       interface="org.freedesktop.DBus.ObjectManager"))
        if reply is None or reply.message_type == MessageType.ERROR:
            return []
        return [s for path, dev in self._bluez_devices(reply.body[0]) if dev["Connected"].value
                for s in [self._bluez_session(path, dev)] if not s.connected]

    def _on_bus_message(self, msg: Message) -> None:
        if msg.message_type == MessageType.SIGNAL and msg.member == "NameOwnerChanged" \
                and msg.body and msg.body[0] == "org.bluez" and not msg.body[2]:
            self.link_lost("bluetoothd went away")
        return None

    async def _watch_bus(self, bus: MessageBus) -> None:
        with contextlib.suppress(Exception):
            await bus.wait_for_disconnect()
        if bus is self.bus:
            self.link_lost("the system bus went away")

    async def disconnect(self) -> None:
        for s in list(self.sessions.values()):
            await s.close()
        bus, self.bus = self.bus, None
        watch = getattr(self, "_watch", None)
        if watch is not None:
            watch.cancel()
        if bus is not None:
            with contextlib.suppress(Exception):
                bus.unexport(AGENT_PATH)
                bus.disconnect()
        # The sessions' clients belong to this connection; a reconnect starts them afresh.
        for s in self.sessions.values():
            s._closing = False

    async def selftest(self, level: str) -> dict[str, Any]:
        self.require_online()
        ok = self.bus is not None and self.bus.connected
        return {"passed": ok, "level": level,
                "checks": [{"name": "adapter", "passed": ok, "adapter": self.adapter}]}

    # --- devices -------------------------------------------------------------------------
    def _kinds_of(self, device: BLEDevice, uuids: list[str]) -> list[str]:
        for entry in self.known:
            if _matches(entry, device) and entry.get("kinds"):
                return list(entry["kinds"])
        kinds = [SERVICE_KINDS[u] for u in uuids if u in SERVICE_KINDS]
        return sorted(set(kinds), key=KINDS.index)

    def _is_known(self, device: BLEDevice) -> bool:
        return any(_matches(e, device) for e in self.known)

    def _session(self, device: BLEDevice, uuids: list[str]) -> Session:
        address = device.address.upper()
        s = self.sessions.get(address)
        if s is None:
            s = Session(device, self._kinds_of(device, uuids), self._is_known(device), self.adapter,
                        self._changed)
            self.sessions[address] = s
        else:
            s.seen(device)
        return s

    def _changed(self, s: Session) -> None:
        self.emit("health.device", s.describe())

    async def _scan(self, want: Any, uuids: list[str] | None, wait_s: float,
                    preferred: Any = None, grace_s: float = 0.0, ready: Any = None) -> Session | None:
        """Scan until a device satisfies `want(device, adv)`; None after `wait_s`. With
        `preferred`, a device it accepts wins over others seen up to `grace_s` before it.
        `ready()`, asked once another request's scan is over, may name a session that needs none."""
        loop = asyncio.get_running_loop()
        found: asyncio.Future[tuple[BLEDevice, AdvertisementData]] = loop.create_future()
        fallback: list[asyncio.TimerHandle] = []

        def settle(device: BLEDevice, adv: AdvertisementData) -> None:
            if not found.done():
                found.set_result((device, adv))

        def seen(device: BLEDevice, adv: AdvertisementData) -> None:
            uuids = list(adv.service_uuids)
            if self._kinds_of(device, uuids):
                self._session(device, uuids)  # every health device seen goes into health.devices
            if found.done() or not want(device, adv):
                return
            if preferred is None or preferred(device):
                settle(device, adv)
            elif not fallback:
                fallback.append(loop.call_later(grace_s, settle, device, adv))

        try:
            # bleak's scanners share one D-Bus connection, and BlueZ lets a connection run one
            # discovery (a second StartDiscovery is org.bluez.Error.InProgress): one scan at a time
            # on this adapter; a request waiting for another's scan spends its own wait doing so.
            deadline = loop.time() + wait_s
            async with asyncio.timeout_at(deadline):
                await self._scan_lock.acquire()
            try:
                early = ready() if ready is not None else None
                if early is not None:
                    return early  # type: ignore[no-any-return]
                async with BleakScanner(detection_callback=seen, service_uuids=uuids,
                                        bluez={"adapter": self.adapter}):
                    async with asyncio.timeout_at(deadline):
                        device, adv = await found
            finally:
                self._scan_lock.release()
        except TimeoutError:
            return None
        except (BleakError, EOFError) as exc:
            raise HalError("hardware_error", f"scanning failed ({type(exc).__name__})") from None
        finally:
            for timer in fallback:
                timer.cancel()
        return self._session(device, list(adv.service_uuids))

    async def _pick(self, kind: str, address: str | None, ctx: OperationContext) -> Session:
        def fits(s: Session) -> bool:
            if address is None:
                return kind in s.kinds
            return s.address == address.upper() or fnmatch.fnmatchcase(s.name, address)

        candidates = [s for s in self.sessions.values() if fits(s)]
        for s in candidates:
            if s.connected:
                return s
        for s in await self._left_connected():
            if fits(s):
                return s
        timeout = min(self._ms("scan_timeout_ms", 10000), ctx.remaining(3600.0) or 0.0)
        ctx.progress("health.progress", {"stage": "scanning", "kind": kind})
        discover = bool(self.options.get("discover", True))

        def want(device: BLEDevice, adv: AdvertisementData) -> bool:
            if address is not None:
                return device.address.upper() == address.upper() or \
                    fnmatch.fnmatchcase(device.name or "", address)
            if kind not in self._kinds_of(device, list(adv.service_uuids)):
                return False
            return discover or self._is_known(device)

        # A configured device of the kind beats a discovered one seen a moment before it.
        known_kind = address is None and any(kind in e.get("kinds", [kind]) for e in self.known)
        found = await self._scan(want, None if address else KIND_SERVICES[kind], timeout,
                                 self._is_known if known_kind else None, self._ms("prefer_known_ms", 1500),
                                 lambda: next((s for s in self.sessions.values() if fits(s) and s.connected),
                                              None))
        if found is None:
            # A device BlueZ knows (bonded) may be reachable without advertising to us.
            if candidates:
                return candidates[0]
            what = address or kind.replace("_", " ")
            raise HalError("no_device", f"no {what} device in range", kind=kind)
        if address is not None and kind not in found.kinds:
            raise HalError("not_supported", f"{found.name} does not measure {kind}", kind=kind)
        return found

    async def _connected(self, s: Session, ctx: OperationContext) -> None:
        if not s.connected:
            ctx.progress("health.progress", {"stage": "connecting", "address": s.address, "name": s.name})
            await s.connect(int(self.options.get("connect_attempts", 4)), ctx.deadline)
        else:
            await s.read_battery()  # on connect the session reads it itself
        ctx.progress("health.progress", {"stage": "connected", "address": s.address, "name": s.name})

    # --- RPC -----------------------------------------------------------------------------
    @rpc_method("health.measure",
                "Take a blood-pressure, SpO2, weight or body-composition reading on a BLE device.",
                params=MEASURE_PARAMS, result=MEASURE_RESULT, long=True, citizen_data=True, exclusive=False,
                errors=("device_offline", "no_device", "not_paired", "link_lost", "timeout", "cancelled",
                        "invalid_reading", "cuff_error", "no_finger", "unstable_weight", "device_busy",
                        "not_supported"),
                events=("health.progress", "health.cuff_pressure", "health.live"))
    async def measure(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        self.require_online()
        kind = str(params["kind"])
        async with self.operation(exclusive=False):
            s = await self._pick(kind, params.get("address"), ctx)
            if s.measuring.locked():
                raise HalError("device_busy", f"{s.name} is measuring for another request", address=s.address)
            async with s.measuring:
                await self._connected(s, ctx)
                wait_s = self._ms("measure_timeout_ms", 180000)
                try:
                    async with asyncio.timeout(wait_s):
                        result = await self._measure_on(s, kind, params, ctx)
                except TimeoutError:
                    raise HalError("timeout", f"no reading from {s.name} within {wait_s:.0f} s",
                                   address=s.address) from None
            result["device"] = {"address": s.address, "name": s.name, "battery_percent": s.battery}
            return result

    async def _measure_on(self, s: Session, kind: str, params: Mapping[str, Any],
                          ctx: OperationContext) -> dict[str, Any]:
        q = s.queue()
        subscribed: list[str] = []

        async def sub(uuid: str, tag: str) -> None:
            await s.subscribe(uuid, q, tag)
            subscribed.append(uuid)

        try:
            if kind == "blood_pressure":
                return await self._blood_pressure(s, q, sub, ctx)
            if kind == "spo2":
                if s.has(BERRYMED_NOTIFY):
                    return await self._berrymed(s, q, sub, ctx)
                return await self._plx(s, q, sub, ctx)
            height = params.get("height_m")
            if kind == "weight":
                await sub(WEIGHT, "weight")
                raw = await self._next(q, {"weight"}, s)
                return readings.weight_result(readings.parse(readings.DECODERS["weight"], raw, "scale"),
                                              height)
            await sub(BODY, "body")
            if s.has(WEIGHT):
                await sub(WEIGHT, "weight")
            raw = await self._next(q, {"body"}, s)
            return readings.body_composition_result(
                readings.parse(readings.DECODERS["body_composition"], raw, "scale"), height)
        finally:
            s.release(q)
            for uuid in subscribed:
                await s.unsubscribe(uuid)

    async def _next(self, q: asyncio.Queue[Any], tags: set[str], s: Session,
                    on_other: Any = None) -> bytes:
        """The next value tagged one of `tags`; others go to `on_other`. link_lost if the link goes."""
        while True:
            item = await q.get()
            if item is LOST:
                raise HalError("link_lost", f"the link to {s.name} was lost during the measurement",
                               address=s.address)
            tag, raw = item
            if tag in tags:
                return bytes(raw)
            if on_other is not None:
                on_other(tag, raw)

    async def _blood_pressure(self, s: Session, q: asyncio.Queue[Any], sub: Any,
                              ctx: OperationContext) -> dict[str, Any]:
        def live(tag: str, raw: bytes) -> None:
            if tag == "icp":
                with contextlib.suppress(ProtocolError):
                    p = readings.cuff_pressure_mmhg(readings.DECODERS["cuff_pressure"](raw))
                    if p is not None:
                        ctx.progress("health.cuff_pressure", {"pressure_mmhg": p})

        stored: list[dict[str, Any]] = []
        early: list[bytes] = []  # a reading that came while the control point was still answering
        if s.has(ICP):
            await sub(ICP, "icp")
        if s.has(RACP):
            await sub(RACP, "racp")
            await sub(BPM, "bpm")
            try:
                async with asyncio.timeout(self._ms("racp_timeout_ms", 10000)):
                    stored = await self._stored_records(s, q, live, early)
            except TimeoutError:
                log.info("%s: no answer on the record access control point", s.address,
                         extra={"reason": "racp_timeout"})
        else:
            await sub(BPM, "bpm")
        ctx.progress("health.progress", {"stage": "measuring", "address": s.address})
        raw = early[0] if early else await self._next(q, {"bpm"}, s, live)
        result = readings.blood_pressure_result(
            readings.parse(readings.DECODERS["blood_pressure"], raw, "cuff"))
        if stored:
            result["stored"] = stored
        return result

    async def _stored_records(self, s: Session, q: asyncio.Queue[Any], live: Any,
                              early: list[bytes]) -> list[dict[str, Any]]:
        """RACP: how many readings the cuff holds from before we connected; fetch, then delete them.
        A measurement outside the transfer (before or after it) is kept in `early`."""
        def keep(tag: str, raw: bytes) -> None:
            if tag == "bpm":
                early.append(raw)
            else:
                live(tag, raw)

        def response() -> Any:
            return self._next(q, {"racp"}, s, keep)

        await s.write(RACP, racp.report_number_of_records())
        try:
            answer = racp.decode_response(await response())
        except ProtocolError:
            return []
        if answer["op"] != "count" or not answer["count"]:
            return []
        await s.write(RACP, racp.report_stored_records())
        records: list[dict[str, Any]] = []
        while True:
            item = await q.get()
            if item is LOST:
                raise HalError("link_lost", f"the link to {s.name} was lost while reading stored records")
            tag, raw = item
            if tag == "bpm":
                with contextlib.suppress(HalError):
                    records.append(readings.blood_pressure_result(
                        readings.parse(readings.DECODERS["blood_pressure"], raw, "cuff")))
            elif tag == "racp":
                break
            else:
                live(tag, raw)
        await s.write(RACP, racp.request(racp.DELETE_STORED_RECORDS))
        with contextlib.suppress(ProtocolError):
            racp.decode_response(await response())
        return records

    async def _plx(self, s: Session, q: asyncio.Queue[Any], sub: Any,
                   ctx: OperationContext) -> dict[str, Any]:
        def live(tag: str, raw: bytes) -> None:
            with contextlib.suppress(ProtocolError):
                value = readings.live_spo2(readings.DECODERS["continuous"](raw))
                if value is not None:
                    ctx.progress("health.live", value)

        if s.has(CONT):
            await sub(CONT, "cont")
        await sub(SPOT, "spot")
        ctx.progress("health.progress", {"stage": "measuring", "address": s.address})
        raw = await self._next(q, {"spot"}, s, live)
        return readings.spo2_result(readings.parse(readings.DECODERS["spot_check"], raw, "oximeter"))

    async def _berrymed(self, s: Session, q: asyncio.Queue[Any], sub: Any,
                        ctx: OperationContext) -> dict[str, Any]:
        parser = berrymed.FrameParser()
        steady = int(self.options.get("steady_frames", 30))
        no_finger_s = self._ms("no_finger_ms", 5000)
        loop = asyncio.get_running_loop()
        no_finger_since: float | None = None
        run: list[dict[str, Any]] = []
        await sub(BERRYMED_NOTIFY, "frames")
        ctx.progress("health.progress", {"stage": "measuring", "address": s.address})
        while True:
            frames = parser.feed(await self._next(q, {"frames"}, s))
            for f in frames:
                if f["no_finger"] or f["probe_unplugged"]:
                    no_finger_since = no_finger_since or loop.time()
                    run.clear()
                    if loop.time() - no_finger_since >= no_finger_s:
                        raise HalError("no_finger", "no finger in the oximeter")
                    continue
                no_finger_since = None
                if f["spo2"] is None or f["pulse_rate"] is None or f["searching"]:
                    run.clear()
                    continue
                run.append(f)
            if frames:
                last = frames[-1]
                live: dict[str, Any] = {"pleth": [f["pleth"] for f in frames],
                                        "finger": not last["no_finger"]}
                if last["spo2"] is not None and last["pulse_rate"] is not None:
                    live.update(spo2_percent=last["spo2"], pulse_bpm=last["pulse_rate"])
                ctx.progress("health.live", live)
            if len(run) >= steady:
                return readings.berrymed_result(run[-steady:])

    @rpc_method("health.devices", "The BLE health devices this station knows: configured, paired or seen.",
                readonly=True, exclusive=False,
                result={"type": "object", "required": ["devices"],
                        "properties": {"devices": {"type": "array", "items": {"type": "object"}},
                                       "configured": {"type": "array", "items": KNOWN_SCHEMA}}})
    async def devices(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        return {"devices": [s.describe() for s in self.sessions.values()], "configured": self.known}

    @rpc_method("health.pair", "Bond with a BLE device that demands it (NoInputNoOutput: Just Works).",
                params=ADDRESS_PARAMS, role="technician", long=True, exclusive=False,
                errors=("device_offline", "no_device", "not_paired", "device_busy", "timeout"),
                events=("health.progress",))
    async def pair(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        self.require_online()
        address = str(params["address"]).upper()
        async with self.operation(exclusive=False):
            s = self.sessions.get(address)
            if s is None or not s.connected:
                wait_s = min(self._ms("scan_timeout_ms", 10000), ctx.remaining(3600.0) or 0.0)
                s = await self._scan(lambda d, a: d.address.upper() == address, None, wait_s) or s
            if s is None:
                raise HalError("no_device", f"no BLE device {address} in range")
            async with s.measuring:
                await self._connected(s, ctx)
                assert s.client is not None
                try:
                    await s.client.pair()
                except (BleakDBusError, BleakError) as exc:
                    why = getattr(exc, "dbus_error", type(exc).__name__)
                    raise HalError("not_paired", f"pairing with {s.name} failed ({why})",
                                   address=address) from None
                await s.after_connect()
            s.paired = True
            self._changed(s)
            return {"address": s.address, "name": s.name, "paired": True}

    @rpc_method("health.forget", "Remove a BLE device's bond and stop reconnecting to it.",
                params=ADDRESS_PARAMS, role="technician", exclusive=False,
                errors=("device_offline", "no_device"))
    async def forget(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        self.require_online()
        address = str(params["address"]).upper()
        s = self.sessions.get(address)
        if s is not None:
            await s.forget_link()
        assert self.bus is not None
        path = f"{self.adapter_path}/dev_{address.replace(':', '_')}"
        reply = await self.bus.call(Message(destination="org.bluez", path=self.adapter_path,
                                            interface="org.bluez.Adapter1", member="RemoveDevice",
                                            signature="o", body=[path]))
        removed = reply is not None and reply.message_type != MessageType.ERROR
        if s is None and not removed:
            raise HalError("no_device", f"no BLE device {address} is known")
        if s is not None:
            s.paired = False
            if not s.known:
                del self.sessions[address]
            self.emit("health.device", {**s.describe(), "forgotten": True})
        return {"address": address, "forgotten": True}

