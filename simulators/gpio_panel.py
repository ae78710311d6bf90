"""Simulated station panel (station part `gpio_panel`): indicator lamps, a buzzer, a presence
sensor and a door switch, at the far end of the GPIO driver's wire (`protocols.gpio_wire`).

    python -m simulators.gpio_panel --dir run/panel

Control actions: person_arrives, person_leaves, door_open, door_close (the sensors);
state (lamp and buzzer levels, buzzer beeps counted); wait {lamp | buzzer, level, timeout_s}
(until the wire shows that level); unplug / plug (the wire is cut: the
driver sees its link lost and reconnects once plugged); garbage {lines} (noise on the wire);
reset.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pathlib
from collections.abc import Mapping
from typing import Any

from protocols import gpio_wire
from simulators.base import StationPart, UnknownAction, serve_until_signalled, workdir_path

LIGHTS = {"status": 17, "card": 27, "payment": 22, "printer": 23}
BUZZER, PRESENCE, DOOR = 18, 24, 25
ACTIONS = ("person_arrives", "person_leaves", "door_open", "door_close", "state", "wait", "unplug",
           "plug", "garbage", "reset")


class Panel:
    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.inputs = {PRESENCE: 0, DOOR: 0}
        self.outputs: dict[int, float] = {}
        self.beeps = 0
        self.wire_errors = 0
        self.connections = 0
        self.plugged = True
        self._server: asyncio.AbstractServer | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._changed = asyncio.Condition()

    async def start(self) -> Panel:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        return self

    async def stop(self) -> None:
        self._drop()
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.plugged:
            writer.close()
            return
        self._drop()  # one board: a new connection replaces the old
        self._writer = writer
        self.connections += 1
        for pin, level in self.inputs.items():
            writer.write(gpio_wire.encode(pin, level))
        decoder = gpio_wire.Decoder()
        try:
            while data := await reader.read(4096):
                for pin, level in decoder.feed(data):
                    if pin == BUZZER and level >= 0.5 and self.outputs.get(BUZZER, 0) < 0.5:
                        self.beeps += 1
                    self.outputs[pin] = level
                self.wire_errors = decoder.errors
                async with self._changed:
                    self._changed.notify_all()
        except (ConnectionError, OSError):
            pass
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()

    def _set_input(self, pin: int, level: int) -> None:
        self.inputs[pin] = level
        if self._writer is not None:
            self._writer.write(gpio_wire.encode(pin, level))

    def state(self) -> dict[str, Any]:
        lamps = {name: self.outputs.get(pin, 0.0) for name, pin in LIGHTS.items()}
        return {"lamps": lamps, "buzzer": self.outputs.get(BUZZER, 0.0), "beeps": self.beeps,
                "presence": bool(self.inputs[PRESENCE]), "door": "open" if self.inputs[DOOR] else "closed",
                "connected": self._writer is not None, "connections": self.connections,
                "plugged": self.plugged}

    async def control(self, action: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        if action == "person_arrives":
            self._set_input(PRESENCE, 1)
        elif action == "person_leaves":
            self._set_input(PRESENCE, 0)
        elif action == "door_open":
            self._set_input(DOOR, 1)
        elif action == "door_close":
            self._set_input(DOOR, 0)
        elif action == "unplug":  # the cable is out: nobody answers on the wire
            self.plugged = False
            if self._server is not None:
                self._server.close()
                self._server = None
            self._drop()
        elif action == "plug":
            self.plugged = True
            if self._server is None:
                await self.start()
        elif action == "garbage":
            if self._writer is not None:
                for i in range(int(args.get("lines", 3))):
                    self._writer.write([b"\xff\xfe garbage\n", b"99 7\n", b"17\n", b"x" * 100][i % 4])
        elif action == "reset":
            self.plugged = True
            if self._server is None:
                await self.start()
            self.beeps = 0
            self._set_input(PRESENCE, 0)
            self._set_input(DOOR, 0)
        elif action == "wait":  # until a lamp or the buzzer shows `level` (what a test waits on)
            pin = BUZZER if args.get("buzzer") else LIGHTS[str(args["lamp"])]
            level = float(args["level"])
            async with self._changed:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: abs(self.outputs.get(pin, 0.0) - level) < 1e-6),
                    float(args.get("timeout_s", 10)))
        elif action != "state":
            raise UnknownAction(action)
        if self._writer is not None:
            await self._writer.drain()
        return self.state()

    def device_table(self) -> dict[str, Any]:
        return {"driver": "gpio", "pin_factory": "mock", "wire": str(self.path), "lights": dict(LIGHTS),
                "buzzer": BUZZER, "presence": PRESENCE, "door": DOOR}


async def start_part(workdir: pathlib.Path, options: Mapping[str, Any]) -> StationPart:
    panel = await Panel(workdir_path(workdir, "gpio_panel/wire.sock")).start()
    return StationPart(name="gpio_panel", devices={"panel0": panel.device_table()}, control=panel.control,
                       stop=panel.stop, actions=ACTIONS)


async def _main(workdir: pathlib.Path) -> None:
    part = await start_part(workdir, {})
    print(json.dumps(part.devices), flush=True)
    await serve_until_signalled(part.stop)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m simulators.gpio_panel", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="run/panel")
    ns = ap.parse_args()
    asyncio.run(_main(pathlib.Path(ns.dir).resolve()))


if __name__ == "__main__":
    main()
