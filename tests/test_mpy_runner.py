"""The MicroPython runner fails when protocol code uses what MicroPython lacks, so `make test`
cannot pass with a CPython-only construct in protocols/."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNNER = ROOT / "tests" / "mpy_runner.py"


def run_runner(*files: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUNNER), *map(str, files)], capture_output=True, text=True,
                          timeout=120)


def test_a_cpython_only_construct_fails_the_run(tmp_path: pathlib.Path) -> None:
    (tmp_path / "cpython_only_codec.py").write_text(
        "from dataclasses import dataclass\n\n@dataclass\nclass Frame:\n    size: int\n")
    test = tmp_path / "test_cpython_only.py"
    test.write_text("import cpython_only_codec\n\n"
                    "def test_frame():\n    assert cpython_only_codec.Frame(3).size == 3\n")
    out = run_runner(test)
    assert out.returncode == 1
    assert "IMPORT-ERROR" in out.stdout and "0 passed, 1 failed" in out.stdout.splitlines()[-1]


def test_keyword_byteorder_fails_under_micropython(tmp_path: pathlib.Path) -> None:
    test = tmp_path / "test_byteorder.py"
    test.write_text("def test_signed():\n    assert int.from_bytes(b'\\xff', 'big', signed=True) == -1\n")
    assert run_runner(test).returncode == 1  # MicroPython ignores `signed`


def test_a_portable_test_passes(tmp_path: pathlib.Path) -> None:
    test = tmp_path / "test_ok.py"
    test.write_text("import struct\n\ndef test_pack():\n    assert struct.pack('>H', 258) == b'\\x01\\x02'\n")
    out = run_runner(test)
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "micropython: 1 passed, 0 failed"
