"""Every parser in `protocols/` is fed garbage by some hypothesis test: a module that decodes
bytes or text (a function or method named decode*/parse*/unpack*/unprotect*/from_bytes/
receive_data/feed/next_event) must be imported by a `tests/test_*fuzz*.py` file. A new protocol
module fails this test until its fuzz test exists."""

from __future__ import annotations

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
PARSER = re.compile(r"^(decode|parse|unpack|unprotect|from_bytes$|receive_data$|feed$|next_event$)")


def parser_modules() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "protocols").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        names = [n.name for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.FunctionDef) and PARSER.match(n.name)]
        if names:
            found[module] = names
    return found


def fuzzed_modules() -> set[str]:
    seen: set[str] = set()
    for path in (ROOT / "tests").glob("test_*fuzz*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                seen.add(node.module)
                seen.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                seen.update(a.name for a in node.names)
    # `from protocols import scale` reaches what protocols/scale/__init__.py re-exports
    for name in list(seen):
        init = ROOT.joinpath(*name.split("."), "__init__.py")
        if init.exists():
            seen.update(n.module for n in ast.walk(ast.parse(init.read_text()))
                        if isinstance(n, ast.ImportFrom) and n.module)
    return seen


def test_every_protocol_parser_has_a_fuzz_test() -> None:
    fuzzed = fuzzed_modules()
    missing = {m: names for m, names in parser_modules().items() if m not in fuzzed}
    assert missing == {}, f"protocol parsers no tests/test_*fuzz*.py imports: {missing}"


def test_the_rpc_decoder_is_fuzzed() -> None:
    assert "halsvc.rpc.decode_line" in fuzzed_modules()


def test_fuzz_tests_let_the_long_mode_raise_their_examples() -> None:
    """A literal `max_examples=N` would stay N under HALSVC_FUZZ_LONG=1: use `examples(N)`."""
    pinned = [f"{path.name}:{n}" for path in sorted((ROOT / "tests").glob("test_*fuzz*.py"))
              for n, line in enumerate(path.read_text().splitlines(), 1)
              if re.search(r"max_examples\s*=\s*\d", line)]
    assert pinned == [], f"use tests/fuzzing.py examples(n): {pinned}"
