"""Hypothesis settings shared by the fuzz tests, and where crashing inputs are kept.

- `make test`: each fuzz test runs its own modest `max_examples`.
- `HALSVC_FUZZ_LONG=1` (`make fuzz-long`): the `fuzz-long` profile (registered in conftest.py)
  runs every test for `HALSVC_FUZZ_EXAMPLES` examples (default 20 000, minutes per target) with no
  deadline; `examples(n)` gives way to it.
- Every hypothesis test, in both modes, replays and records failing inputs in the checked-in
  `tests/fuzz-examples/` directory. `KeepingDatabase` never deletes an entry it did not write in
  the same run, so an input that once crashed stays a regression example after the fix (commit
  the new files a failing run leaves there; for a readable record add an `@example` too).
"""

from __future__ import annotations

import os
import pathlib

from hypothesis.database import DirectoryBasedExampleDatabase

LONG = os.environ.get("HALSVC_FUZZ_LONG") == "1"
LONG_EXAMPLES = int(os.environ.get("HALSVC_FUZZ_EXAMPLES", "20000"))
EXAMPLES_DIR = pathlib.Path(__file__).resolve().parent / "fuzz-examples"


def examples(n: int) -> int:
    """`n` examples in `make test`; the long mode's count under HALSVC_FUZZ_LONG=1."""
    return LONG_EXAMPLES if LONG else n


class KeepingDatabase(DirectoryBasedExampleDatabase):
    """Hypothesis' directory database, except that replaying an input that no longer fails does
    not delete it: only entries saved during this run (steps of a shrink) are ever removed, and
    only each failure's shrunk input is written (not the secondary corpus)."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        super().__init__(path)
        self._ours: set[tuple[bytes, bytes]] = set()

    def save(self, key: bytes, value: bytes) -> None:
        if key.endswith((b".secondary", b".pareto")):  # shrink steps and targets: not regressions
            return
        if not self._value_path(key, value).exists():
            self._ours.add((key, value))
        super().save(key, value)

    def delete(self, key: bytes, value: bytes) -> None:
        if (key, value) in self._ours:
            self._ours.discard((key, value))
            super().delete(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self.save(dest, value)
        self.delete(src, value)
