"""`halsvc`: the daemon's entry point — config, socket (own or systemd's), devices, signals."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import logging
import os
import pathlib
import resource
import signal
import socket
import sys
import time
from typing import Any

from halsvc import DEFAULT_SYSTEM_SOCKET, __version__, logs, sdnotify
from halsvc.config import Config, ConfigError, load
from halsvc.registry import Registry
from halsvc.server import Server

log = logging.getLogger("halsvc")
DEFAULT_CONFIG = "/etc/halsvc/halsvc.toml"
EX_CONFIG = 78  # sysexits: systemd shows it as a configuration error


def socket_path(args_socket: str | None, config: Config) -> str:
    """--socket, else $HALSVC_SOCKET, else the config's, else the system path."""
    return args_socket or os.environ.get("HALSVC_SOCKET") or config.socket or DEFAULT_SYSTEM_SOCKET


def bind_socket(path: str, config: Config) -> socket.socket:
    """Bind the RPC socket, replacing a stale file but never a live daemon's socket."""
    p = pathlib.Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.exists() or p.is_symlink():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except OSError:
                p.unlink()  # nobody listens: left by a crash
            else:
                raise ConfigError(f"{path}: another halsvc is already serving this socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o777 & ~config.socket_mode)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, config.socket_mode)
    if config.socket_group:
        try:
            os.chown(path, -1, grp.getgrnam(config.socket_group).gr_gid)
        except (KeyError, PermissionError) as exc:
            log.warning("cannot give %s to group %s: %s", path, config.socket_group, exc)
    sock.listen(256)
    return sock


def _start_hotplug(server: Server) -> Any:
    """udev hot-plug for the devices with a `match` selector (none: no netlink socket at all)."""
    devices = server.registry.devices
    selectors = {d.id: d.match for d in server.config.devices if d.match}
    if not selectors:
        return None
    from halsvc.hotplug import HotplugMonitor

    def present(dev_id: str, node: str, props: Any) -> None:
        driver = devices[dev_id]
        driver.plugged({driver.hotplug_option: node})

    def absent(dev_id: str) -> None:
        devices[dev_id].unplugged()

    try:
        monitor = HotplugMonitor(selectors, present, absent)
        monitor.start()
    except Exception as exc:  # no udev (a container): devices stay as configured
        log.warning("hot-plug unavailable (%s); matched devices use their configured paths",
                    type(exc).__name__)
        for dev_id in selectors:
            devices[dev_id].plugged()
        return None
    return monitor


def _start_usage(server: Server) -> asyncio.Task[None] | None:
    """Usage figures (halsvc/usage.py): every configured driver operation, saved periodically."""
    from halsvc import usage

    kinds = usage.counted_methods((name, cls.kind, spec.readonly)
                                  for name, (cls, spec) in server.registry.methods().items())
    store = server.usage = usage.UsageStore.from_config(server.config, kinds)
    if store is None:
        return None
    return asyncio.create_task(store.run(float(server.config.usage.get("flush_s", 60))))


def raise_fd_limit(wanted: int) -> None:
    """Hundreds of clients plus devices need more than the usual soft limit of 1024 descriptors;
    take up to the hard limit (systemd's default hard limit is 524288)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def serve(config: Config, args_socket: str | None) -> int:
    t0 = time.monotonic()
    raise_fd_limit(config.max_connections + 256)
    loop = asyncio.get_running_loop()
    server = Server(config, lambda publish: Registry(config, publish))
    passed = sdnotify.listen_sockets()
    own_path: str | None = None
    if passed:
        for _name, sock in passed:
            await server.serve_socket(sock)
        where = "systemd socket"
    else:
        own_path = socket_path(args_socket, config)
        await server.serve_socket(bind_socket(own_path, config))
        where = own_path
    if config.bridge.enabled:
        await server.serve_bridge()
    server.registry.start()
    monitor = server.hotplug = _start_hotplug(server)
    usage_task = _start_usage(server)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    n = len(server.registry.devices)
    sdnotify.notify("READY=1", f"STATUS=serving {n} device{'s' * (n != 1)} on {where}")
    log.info("halsvc %s ready on %s with %d devices in %.0f ms", __version__, where, n,
             (time.monotonic() - t0) * 1000)
    watchdog = None
    interval = sdnotify.watchdog_interval()
    if interval:
        watchdog = sdnotify.Watchdog(interval)
        watchdog.start()
    try:
        await stop.wait()
    finally:
        sdnotify.notify("STOPPING=1", "STATUS=stopping")
        log.info("stopping")
        if watchdog:
            watchdog.stop()
        if monitor is not None:
            monitor.stop()
        try:
            await asyncio.wait_for(server.stop(config.shutdown_timeout_s * 0.5),
                                   config.shutdown_timeout_s)
        except TimeoutError:
            log.warning("devices did not stop within %.1fs", config.shutdown_timeout_s)
        if usage_task is not None:
            usage_task.cancel()
            server.usage.close()
        if own_path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(own_path)
    return 0


def make_bridge_token(config: Config) -> int:
    if not config.bridge.enabled:
        return 0
    from halsvc.bridge import ensure_token

    try:
        ensure_token(config.bridge.token_path(config), config.bridge.token_group)
    except ConfigError as exc:
        print(f"halsvc: {exc}", file=sys.stderr)
        return EX_CONFIG
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="halsvc", description="Hardware daemon of the Digital Citizen Station: every device of the "
        "station behind one Unix-socket JSON-RPC API. Under systemd it takes its socket from halsvc.socket.")
    ap.add_argument("--config", default=os.environ.get("HALSVC_CONFIG", DEFAULT_CONFIG),
                    help=f"TOML config file (default {DEFAULT_CONFIG}, or $HALSVC_CONFIG)")
    ap.add_argument("--socket", help="socket path when not socket-activated (default $HALSVC_SOCKET, the "
                    f"config's daemon.socket, then {DEFAULT_SYSTEM_SOCKET})")
    ap.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    ap.add_argument("--check-config", action="store_true", help="validate the config and exit")
    ap.add_argument("--bridge-token", action="store_true",
                    help="create the WebSocket bridge's per-boot token file if absent and exit (run as "
                    "root before the daemon: ExecStartPre=+ in halsvc.service)")
    ap.add_argument("--version", action="version", version=f"halsvc {__version__}")
    args = ap.parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"halsvc: {exc}", file=sys.stderr)
        sdnotify.notify(f"STATUS=config error: {exc}")
        return EX_CONFIG
    if args.check_config:
        print(f"{args.config}: ok ({len(config.devices)} devices)")
        return 0
    if args.bridge_token:
        return make_bridge_token(config)
    logs.setup(args.log_level or config.log_level)
    try:
        return asyncio.run(serve(config, args.socket))
    except ConfigError as exc:
        print(f"halsvc: {exc}", file=sys.stderr)
        return EX_CONFIG
    except OSError as exc:
        print(f"halsvc: cannot serve: {exc}", file=sys.stderr)
        return 1
