"""The simulated health devices: a blood-pressure cuff (inflation progress, stored records,
Current Time), a PLX pulse oximeter, a weight / body-composition scale and a BerryMed oximeter
that speaks its proprietary frames. Each measures when the central subscribes to its
measurement (the stand-in for the resident pressing start), or on `press_start`."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

from protocols.gatt_health import (
    BERRYMED_NOTIFY,
    BERRYMED_SERVICE,
    BERRYMED_WRITE,
    berrymed,
    blood_pressure,
    ieee11073,
    plx,
    racp,
    uuid16,
    weight,
)
from simulators.ble_station.gatt import Characteristic, Peripheral, Service


def _special(name: str | None, value: float) -> Any:
    if name == "NaN":
        return ieee11073.NAN
    if name == "NRes":
        return ieee11073.NRES
    return value


class Cuff(Peripheral):
    kinds = ("blood_pressure",)
    actions = (*Peripheral.actions, "next_reading", "stored", "cuff_error", "press_start", "auto_start")

    def __init__(self, device_id: str, address: str, name: str, options: Mapping[str, Any]) -> None:
        super().__init__(device_id, address, name, options)
        self.auto_start = bool(self.options.get("auto_start", True))
        self.reading: dict[str, Any] = {"systolic": 120, "diastolic": 80, "mean_arterial": 93,
                                        "pulse_rate": 72, "status_bits": 0, "user_id": 1}
        self.next: dict[str, Any] | None = None
        self.stored: list[dict[str, Any]] = []
        self.cuff_error = False
        self.measurement = Characteristic(0x2A35, ("indicate",))
        self.intermediate = Characteristic(0x2A36, ("notify",))
        self.feature = Characteristic(0x2A49, ("read",), blood_pressure.encode_feature(0x0027))
        self.racp = Characteristic(0x2A52, ("write", "indicate"))
        self.measurement.on_subscribe = self._subscribed
        self.racp.on_write = self._racp_write
        self.services = [Service(0x1810, [self.measurement, self.intermediate, self.feature, self.racp]),
                         self.time_service(), self.battery_service()]
        self.advertised = [uuid16(0x1810)]
        self._measuring = False
        self._start_after_racp = False

    def _subscribed(self, on: bool) -> None:
        if not on:
            self._start_after_racp = False
        elif self.auto_start and self.racp.notifying:
            # A cuff either transfers its memory or measures: with the control point in use it
            # measures once the central is done asking (no records, or the transfer ended).
            self._start_after_racp = True
        elif self.auto_start:
            self.start()

    def _racp_done(self) -> None:
        if self._start_after_racp:
            self._start_after_racp = False
            self.start()

    def start(self) -> None:
        if not self._measuring:
            self._measuring = True
            self.spawn(self._measure())

    def _encode(self, r: Mapping[str, Any], stamp: tuple[int, ...] | None) -> bytes:
        return blood_pressure.encode_measurement(
            _special(self.special, r["systolic"]), _special(self.special, r["diastolic"]),
            _special(self.special, r["mean_arterial"]), timestamp=stamp,
            pulse_rate=r.get("pulse_rate"), user_id=r.get("user_id"), status_bits=r.get("status_bits"))

    async def _measure(self) -> None:
        try:
            self.checkpoint("start")
            pressures = [0, 40, 80, 120, 160, 180, 160, 140, 120, 100, 80]
            for i, p in enumerate(pressures):
                self.notify(self.intermediate, blood_pressure.encode_intermediate_cuff_pressure(p))
                await asyncio.sleep(self.step_s)
                if i == 3:
                    self.checkpoint("inflating")
            reading = self.next or self.reading
            self.next = None
            if self.cuff_error:
                # The cuff could not take a reading (wrapped too loose): no numbers, the fit bit set.
                self.cuff_error = False
                raw = blood_pressure.encode_measurement(ieee11073.NRES, ieee11073.NRES, ieee11073.NRES,
                                                        timestamp=self.device_time(), status_bits=0x0002)
            else:
                raw = self.take_reading_bytes(lambda: self._encode(reading, self.device_time()))
            self.special = None
            self.checkpoint("result")
            self.notify(self.measurement, raw, final=True)
        finally:
            self._measuring = False

    def _racp_write(self, data: bytes) -> None:
        op, operator, _operand = racp.decode_request(data)
        if op == racp.REPORT_NUMBER_OF_RECORDS:
            self.notify(self.racp, racp.number_of_records(len(self.stored)))
            if not self.stored:
                self._racp_done()
        elif op == racp.REPORT_STORED_RECORDS:
            if operator != racp.OP_ALL:
                self.notify(self.racp, racp.response_code(op, 4))  # operator not supported
                return
            for record in self.stored:
                self.notify(self.measurement, self._encode(record, tuple(record["timestamp"])))
            self.notify(self.racp, racp.response_code(op, racp.SUCCESS if self.stored else 6))
            self._racp_done()
        elif op == racp.DELETE_STORED_RECORDS:
            self.stored.clear()
            self.notify(self.racp, racp.response_code(op, racp.SUCCESS))
        else:
            self.notify(self.racp, racp.response_code(op, 2))

    async def device_control(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action == "next_reading":
            self.next = {**self.reading, **args}
        elif action == "stored":
            self.stored = [{**self.reading, **r} for r in args.get("readings", [])]
        elif action == "cuff_error":
            self.cuff_error = True
        elif action == "press_start":
            self.start()
        elif action == "auto_start":
            self.auto_start = bool(args.get("on", True))
        else:
            return await super().device_control(action, args)
        return self.describe()


class PlxOximeter(Peripheral):
    kinds = ("spo2",)
    actions = (*Peripheral.actions, "next_reading", "no_finger")

    def __init__(self, device_id: str, address: str, name: str, options: Mapping[str, Any]) -> None:
        super().__init__(device_id, address, name, options)
        self.reading: dict[str, Any] = {"spo2": 97, "pulse_rate": 72, "pulse_amplitude_index": 2.5}
        self.next: dict[str, Any] | None = None
        self.no_finger = False
        self.spot = Characteristic(0x2A5E, ("indicate",))
        self.continuous = Characteristic(0x2A5F, ("notify",))
        self.features = Characteristic(0x2A60, ("read",), plx.encode_features(0x004B, 0x8080, 0x8820))
        self.spot.on_subscribe = lambda on: self.spawn(self._measure()) if on else None
        self.services = [Service(0x1822, [self.spot, self.continuous, self.features]), self.time_service(),
                         self.battery_service()]
        self.advertised = [uuid16(0x1822)]

    async def _measure(self) -> None:
        self.checkpoint("start")
        reading = self.next or self.reading
        self.next = None
        for i in range(6):
            if self.no_finger:
                raw = plx.encode_continuous(ieee11073.NAN, ieee11073.NAN, device_status_bits=0x8000)
            else:
                raw = plx.encode_continuous(reading["spo2"] - (1 if i < 2 else 0),
                                            reading["pulse_rate"] + 3 - i // 2,
                                            status_bits=0x0020)
            self.notify(self.continuous, raw)
            await asyncio.sleep(self.step_s)
            if i == 2:
                self.checkpoint("measuring")
        if self.no_finger:
            raw = plx.encode_spot_check(ieee11073.NAN, ieee11073.NAN, device_status_bits=0x8000)
        else:
            raw = self.take_reading_bytes(lambda: plx.encode_spot_check(
                _special(self.special, reading["spo2"]), reading["pulse_rate"], timestamp=self.device_time(),
                status_bits=0x0080, device_status_bits=0,
                pulse_amplitude_index=reading.get("pulse_amplitude_index"), clock_not_set=self.clock is None))
        self.special = None
        self.notify(self.spot, raw, final=True)

    async def device_control(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action == "next_reading":
            self.next = {**self.reading, **args}
        elif action == "no_finger":
            self.no_finger = bool(args.get("on", True))
        else:
            return await super().device_control(action, args)
        return self.describe()


class Scale(Peripheral):
    kinds = ("weight", "body_composition")
    actions = (*Peripheral.actions, "step_on")

    def __init__(self, device_id: str, address: str, name: str, options: Mapping[str, Any]) -> None:
        super().__init__(device_id, address, name, options)
        self.reading: dict[str, Any] = {"kg": 72.35, "height_m": 1.722, "body_fat_percent": 22.5,
                                        "muscle_percent": 38.2, "body_water_mass": 40.1,
                                        "impedance_ohm": 480.5,
                                        "user_id": 1}
        self.next: dict[str, Any] | None = None
        self.weight = Characteristic(0x2A9D, ("indicate",))
        self.weight_feature = Characteristic(0x2A9E, ("read",),
                                             weight.encode_weight_feature(True, True, True))
        self.body = Characteristic(0x2A9C, ("indicate",))
        self.body_feature = Characteristic(0x2A9B, ("read",), bytes((0xFE, 0x1F, 0, 0)))
        self.weight.on_subscribe = lambda on: self.spawn(self._measure()) if on else None
        self.services = [Service(0x181D, [self.weight, self.weight_feature]),
                         Service(0x181B, [self.body, self.body_feature]), self.time_service(),
                         self.battery_service()]
        self.advertised = [uuid16(0x181D), uuid16(0x181B)]

    async def _measure(self) -> None:
        self.checkpoint("start")
        r = self.next or self.reading
        self.next = None
        await asyncio.sleep(self.step_s * 3)  # the person settles on the plate
        self.checkpoint("measuring")
        stamp = self.device_time()
        kg = None if self.special else r["kg"]
        if self.body.notifying:
            self.notify(self.body, self.take_reading_bytes(lambda: weight.encode_body_composition(
                None if self.special else r["body_fat_percent"], timestamp=stamp, user_id=r.get("user_id"),
                muscle_percent=r.get("muscle_percent"), body_water_mass=r.get("body_water_mass"),
                impedance_ohm=r.get("impedance_ohm"), weight=kg, height=r.get("height_m"))), final=True)
        bmi = round(r["kg"] / r["height_m"] ** 2, 1) if r.get("height_m") else None
        raw = self.take_reading_bytes(lambda: weight.encode_weight(
            kg, timestamp=stamp, user_id=r.get("user_id"), bmi=bmi, height=r.get("height_m")))
        self.special = None
        self.notify(self.weight, raw, final=not self.body.notifying)

    async def device_control(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action == "step_on":
            self.next = {**self.reading, **args}
        else:
            return await super().device_control(action, args)
        return self.describe()


class BerryMed(Peripheral):
    """Streams 5-byte frames, two per notification, while the central listens."""

    kinds = ("spo2",)
    actions = (*Peripheral.actions, "next_reading", "no_finger")

    def __init__(self, device_id: str, address: str, name: str, options: Mapping[str, Any]) -> None:
        super().__init__(device_id, address, name, options)
        self.reading: dict[str, Any] = {"spo2": 98, "pulse_rate": 68}
        self.no_finger = False
        self.stream = Characteristic(BERRYMED_NOTIFY, ("notify",))
        self.command = Characteristic(BERRYMED_WRITE, ("write-without-response", "write"))
        self.stream.on_subscribe = lambda on: self.spawn(self._stream()) if on else None
        self.services = [Service(BERRYMED_SERVICE, [self.stream, self.command]), self.battery_service()]
        self.advertised = [BERRYMED_SERVICE]

    def _frame(self, n: int) -> bytes:
        r = self.reading
        if self.no_finger:
            return berrymed.encode_frame(no_finger=True, searching_too_long=n > 20)
        if n < 4:
            return berrymed.encode_frame(searching=True, signal_strength=2)
        pleth = int(50 + 45 * math.sin(n / 3.0))
        return berrymed.encode_frame(r["spo2"], r["pulse_rate"], pleth, signal_strength=8,
                                     bar_graph=pleth // 12,
                                     beep=n % 10 == 0)

    async def _stream(self) -> None:
        self.checkpoint("start")
        n = 0
        while self.stream.notifying:
            raw = self._frame(n) + self._frame(n + 1)
            if self.malformed is not None:
                raw, self.malformed = self.malformed, None
            self.notify(self.stream, raw)
            n += 2
            if n == 8:
                self.checkpoint("measuring")
            await asyncio.sleep(self.step_s)

    async def device_control(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action == "next_reading":
            self.reading = {**self.reading, **args}
        elif action == "no_finger":
            self.no_finger = bool(args.get("on", True))
        else:
            return await super().device_control(action, args)
        return self.describe()


KINDS: dict[str, type[Peripheral]] = {"cuff": Cuff, "plx": PlxOximeter, "scale": Scale, "berrymed": BerryMed}
