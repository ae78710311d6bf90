"""`make run` as a newcomer uses it: the whole simulated station and the daemon come up, it says
what to type next, `halctl status` works from another process, and a signal to the terminal's
process group stops everything it started."""

from __future__ import annotations

import os
import pathlib
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(shutil.which("make") is None, reason="make missing")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_make_run_serves_the_station_and_stops_everything(sig: int) -> None:
    work = pathlib.Path(tempfile.mkdtemp(prefix="hal-run-", dir="/tmp"))
    sock = work / "halsvc.sock"
    env = {**os.environ, "HALSVC_SOCKET": str(sock)}
    proc = subprocess.Popen(["make", "--no-print-directory", "run", f"SIMDIR={work / 'sim'}"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own group, as a terminal's job is
    assert proc.stdout is not None
    out = b""
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"halctl status" not in out.split(b"halsvc is ready", 1)[-1] or b"halsvc is ready" not in out:
            assert sel.select(timeout=120), f"make run never became ready:\n{out.decode(errors='replace')}"
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, f"make run exited:\n{out.decode(errors='replace')}"
            out += chunk
        status = subprocess.run([sys.executable, "-m", "halsvc.cli", "status"], cwd="/", env=env,
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        for device in ("panel0", "idcard0", "printer0", "scale0"):
            assert device in status.stdout
        os.killpg(proc.pid, sig)  # what Ctrl-C (SIGINT) or a service manager (SIGTERM) does
        proc.wait(timeout=60)
        assert not _group_alive(proc.pid), "something make run started is still running"
        assert not sock.exists()
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        shutil.rmtree(work, ignore_errors=True)
