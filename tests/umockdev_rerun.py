"""umockdev works only in a process that `umockdev-wrapper` started (it preloads its libudev and
sysfs redirection). A module that needs it runs its tests under the wrapper when it is imported
outside it, through one test made here."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
UNDER_UMOCKDEV = "umockdev" in os.environ.get("LD_PRELOAD", "")


def rerun_test(module_file: str) -> Callable[[], None]:
    """A test that runs `module_file` under umockdev-wrapper and passes when that run passes."""

    @pytest.mark.skipif(shutil.which("umockdev-wrapper") is None,
                        reason="umockdev not installed (apt umockdev)")
    def test_under_umockdev_wrapper() -> None:
        out = subprocess.run(
            ["umockdev-wrapper", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "-o", "addopts=", "-o", "timeout=180", module_file],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
        assert " passed" in out.stdout

    return test_under_umockdev_wrapper
