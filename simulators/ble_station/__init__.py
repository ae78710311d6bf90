"""Simulated BLE health devices behind a BlueZ stand-in on a private D-Bus system bus.

Station part `ble_station`: starts dbus-daemon (system-bus config, socket in the work dir), our
`org.bluez` stand-in (`bluez.py`) and four peripherals, and gives the daemon
`DBUS_SYSTEM_BUS_ADDRESS` and one `[devices.health0]` table (driver `ble_health`) that knows the cuff
by address and the scale by name; the two oximeters are found by discovery.

    cuff      AA:10:00:00:00:01  blood pressure (inflation progress, RACP stored records, clock)
    oximeter  AA:10:00:00:00:02  PLX pulse oximeter (continuous + spot-check)
    scale     AA:10:00:00:00:03  weight scale + body composition
    berrymed  AA:10:00:00:00:04  BerryMed oximeter (proprietary frames)

Options: {"step_ms": 20, "require_pairing": ["cuff"], "paired": ["scale"]} (a device in
`paired` starts bonded, as after an earlier health.pair).

Control actions take `device` (default "cuff"):
  refuse_connects {count}        the next N connects fail (org.bluez.Error.Failed)
  drop_link {at?}                the device drops the link now, or at a stage: connect, start,
                                 inflating (cuff), measuring (oximeters, scale), result (cuff)
  require_pairing {on?}          characteristics answer NotAuthorized until paired
  advertise {on?}                the device stops / starts advertising (switched off)
  battery {percent}
  malformed {hex}                the next reading is these bytes
  special {value: NaN|NRes}      the next reading carries this special value
  cuff_error {}                  cuff: the next measurement fails (cuff too loose, no values)
  next_reading {...}             cuff: systolic, diastolic, mean_arterial, pulse_rate, status_bits,
                                 user_id; oximeters: spo2, pulse_rate
  stored {readings: [...]}       cuff: readings taken before the kiosk connected (with timestamp)
  press_start {} / auto_start {on}  cuff: measure now / measure when the central subscribes
  step_on {kg, height_m?, body_fat_percent?}  scale: the next weighing
  no_finger {on?}                oximeters: the finger is out
  stats {} / status {}           counters (connects, refused, pairings, drops, indication_at)
  restart_bluez {}               bluetoothd crashes and comes back (no device arg)
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

from simulators.base import StationPart, UnknownAction, workdir_path
from simulators.ble_station.bluez import Bluez
from simulators.ble_station.bus import PrivateBus
from simulators.ble_station.gatt import Peripheral
from simulators.ble_station.peripherals import KINDS

DEFAULT_PERIPHERALS = {
    "cuff": ("cuff", "AA:10:00:00:00:01", "HAL BP Cuff"),
    "oximeter": ("plx", "AA:10:00:00:00:02", "HAL PLX Oximeter"),
    "scale": ("scale", "AA:10:00:00:00:03", "HAL Body Scale"),
    "berrymed": ("berrymed", "AA:10:00:00:00:04", "BerryMed"),
}


class BleStation:
    def __init__(self, bus: PrivateBus, bluez: Bluez, peripherals: dict[str, Peripheral]) -> None:
        self.bus, self.bluez, self.peripherals = bus, bluez, peripherals
        self.actions = tuple(sorted({a for p in peripherals.values() for a in p.actions}
                                    | {"status", "restart_bluez"}))

    async def control(self, action: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        if action not in self.actions:
            raise UnknownAction(action)
        if action == "status":
            return {"devices": [p.describe() for p in self.peripherals.values()],
                    "agents": [cap for _, _, cap in self.bluez.agents],
                    "discovering": bool(self.bluez.discoverers)}
        if action == "restart_bluez":
            # bluetoothd crashes and systemd starts it again: every link goes at once, with no
            # Connected=false first; bonds stay (they are on disk).
            await self.bluez.stop()
            for p in self.peripherals.values():
                if p.connected:
                    p.disconnected()
            self.bluez = await Bluez(self.bus.address, list(self.peripherals.values())).start()
            return {"restarted": True}
        device = str(args.get("device", "cuff"))
        try:
            p = self.peripherals[device]
        except KeyError:
            raise ValueError(f"no simulated BLE device {device!r}; have {sorted(self.peripherals)}") from None
        if action not in p.actions:
            raise ValueError(f"{device} has no action {action!r}; it has {', '.join(p.actions)}")
        return await p.control(action, {k: v for k, v in args.items() if k != "device"})

    async def stop(self) -> None:
        await self.bluez.stop()
        await self.bus.stop()


def _list(value: Any) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return {v for v in value.split(",") if v}
    return {str(v) for v in value}


async def start_station(workdir: pathlib.Path, options: Mapping[str, Any]) -> BleStation:
    directory = workdir_path(workdir, "ble/bus.conf").parent
    bus = await PrivateBus(directory).start()
    require, paired = _list(options.get("require_pairing")), _list(options.get("paired"))
    peripherals: dict[str, Peripheral] = {}
    for device_id, (kind, address, name) in DEFAULT_PERIPHERALS.items():
        opts = {"step_ms": options.get("step_ms", 20), "require_pairing": device_id in require}
        p = KINDS[kind](device_id, address, name, opts)
        p.paired = device_id in paired
        peripherals[device_id] = p
    try:
        bluez = await Bluez(bus.address, list(peripherals.values())).start()
    except BaseException:
        await bus.stop()
        raise
    return BleStation(bus, bluez, peripherals)


async def start_part(workdir: pathlib.Path, options: Mapping[str, Any]) -> StationPart:
    station = await start_station(workdir, options)
    p = station.peripherals
    config = {
        "health0": {
            "driver": "ble_health",
            "adapter": "hci0",
            "discover": True,
            "known": [
                {"address": p["cuff"].address, "kinds": ["blood_pressure"]},
                {"name": "HAL Body Scale*", "kinds": ["weight", "body_composition"]},
            ],
        }
    }
    return StationPart(name="ble_station", devices=config, control=station.control, stop=station.stop,
                       env={"DBUS_SYSTEM_BUS_ADDRESS": station.bus.address}, actions=station.actions)
