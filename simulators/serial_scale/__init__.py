"""Simulated serial scales and height-weight stations, each on its own pty.

Station part `serial_scale`. By default it offers a polled Mettler Toledo 8217 as `scale0` and a
Tanita WB-3000 height-weight station as `hws0`; options choose others:

    {"devices": {"scale0": {"protocol": "and", "seed": 7}, "scale1": {"protocol": "cas"}},
     "detect": true, "settle_s": 1.5}

`detect` writes `protocol = "auto"` into the daemon's config so the driver has to find out.

Control actions (all take `device`, default the first one):
  step_on {kg, height_m?, settle_s?}  a person steps on; the display settles over settle_s
  step_off {settle_s?}                the platform empties
  overload {}                         a load above capacity
  noise {size? | hex?, per_frame?, seed?}
                                      garbage bytes now, or `per_frame` bytes before every frame;
                                      random bytes come from a generator seeded per device
                                      (default "<device>:<protocol>"), `seed` reseeds it first
  silence {on?}                       the scale stops answering / streaming (on=false resumes)
  unplug {} / plug {}                 the cable: unplug hangs the pty up, plug brings a new one
  corrupt_checksum {on?}              the station's records carry a wrong checksum
  set_mode {mode}                     polled / continuous (A&D, MT-SICS)
  status {}                           what the simulator shows (for tests and technicians)
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

from simulators.base import StationPart, UnknownAction, workdir_path
from simulators.serial_scale.device import PROTOCOLS, SimulatedScale

DEFAULT_DEVICES = {"scale0": {"protocol": "mettler_8217"}, "hws0": {"protocol": "tanita_wb3000"}}
ACTIONS = ("step_on", "step_off", "overload", "noise", "silence", "unplug", "plug",
           "corrupt_checksum", "set_mode", "status")


class SerialScaleStation:
    def __init__(self, scales: dict[str, SimulatedScale]) -> None:
        self.scales = scales

    def scale(self, args: Mapping[str, Any]) -> SimulatedScale:
        device = args.get("device") or next(iter(self.scales))
        try:
            return self.scales[device]
        except KeyError:
            raise ValueError(f"no simulated scale {device!r}; have {sorted(self.scales)}") from None

    async def control(self, action: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        if action not in ACTIONS:
            raise UnknownAction(action)
        s = self.scale(args)
        if action == "step_on":
            height = args.get("height_m")
            s.step_on(float(args["kg"]), None if height is None else float(height),
                      None if args.get("settle_s") is None else float(args["settle_s"]))
        elif action == "step_off":
            s.step_off(None if args.get("settle_s") is None else float(args["settle_s"]))
        elif action == "overload":
            s.step_on(s.load.capacity_kg + 50.0, settle_s=0.0)
        elif action == "noise":
            if "seed" in args:
                s.reseed(args["seed"])
            if "per_frame" in args:
                s.noise_per_frame = int(args["per_frame"])
            elif "hex" in args:
                s.inject_noise(bytes.fromhex(str(args["hex"])))
            elif "size" in args or "seed" not in args:
                s.inject_noise(s.random_noise(int(args.get("size", 32))))
        elif action == "silence":
            s.silent = bool(args.get("on", True))
        elif action == "unplug":
            s.port.unplug()
        elif action == "plug":
            s.port.plug()
        elif action == "corrupt_checksum":
            s.corrupt_checksum = bool(args.get("on", True))
        elif action == "set_mode":
            s.mode = str(args["mode"])
        return s.status()

    async def stop(self) -> None:
        for s in self.scales.values():
            await s.stop()


async def start_scales(workdir: pathlib.Path, options: Mapping[str, Any]) -> SerialScaleStation:
    devices = dict(options.get("devices") or DEFAULT_DEVICES)
    scales: dict[str, SimulatedScale] = {}
    for device_id, dev in devices.items():
        dev = dict(dev)
        protocol = str(dev.get("protocol", "mettler_8217"))
        if protocol not in PROTOCOLS:
            raise ValueError(f"{device_id}: unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
        link = workdir_path(workdir, f"serial_scale/{device_id}.tty")
        scale = SimulatedScale(device_id, protocol, link, mode=dev.get("mode"),
                               settle_s=float(dev.get("settle_s", options.get("settle_s", 1.5))),
                               capacity_kg=float(dev.get("capacity_kg", 200.0)), seed=dev.get("seed"))
        await scale.start()
        scales[device_id] = scale
    return SerialScaleStation(scales)


async def start_part(workdir: pathlib.Path, options: Mapping[str, Any]) -> StationPart:
    station = await start_scales(workdir, options)
    detect = bool(options.get("detect", False))
    config: dict[str, dict[str, Any]] = {}
    for device_id, s in station.scales.items():
        config[device_id] = {
            "driver": "scale",
            "port": s.path,
            "protocol": "auto" if detect else s.protocol,
            # A pty cannot run 7E1: the driver opens it 8N1 and carries parity in bit 7.
            "software_parity": True,
        }
        if s.protocol in ("and", "mt_sics") and s.mode == "continuous":
            config[device_id]["mode"] = "continuous"
    return StationPart(name="serial_scale", devices=config, control=station.control, stop=station.stop,
                       actions=ACTIONS)
