"""udev/70-halsvc.rules: syntax (udevadm verify when this udev has it, else our own reading of
udev(7)), every kind one the daemon knows, every matched device given to the halsvc group."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import pytest

RULES = pathlib.Path(__file__).resolve().parent.parent / "udev" / "70-halsvc.rules"
KINDS = {"idcard", "printer", "health", "scale", "payment", "gpio"}

# udev(7): keys that may be matched (== !=) and keys that may be assigned (= += -= :=).
MATCH_KEYS = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "NAME", "SYMLINK", "SUBSYSTEM", "SUBSYSTEMS",
              "DRIVER", "DRIVERS", "ATTR", "ATTRS", "SYSCTL", "ENV", "CONST", "TAG", "TAGS", "TEST",
              "PROGRAM", "RESULT"}
ASSIGN_KEYS = {"NAME", "SYMLINK", "OWNER", "GROUP", "MODE", "SECLABEL", "ATTR", "SYSCTL", "ENV", "TAG",
               "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS"}
KEYS_WITH_ATTRIBUTE = {"ATTR", "ATTRS", "SYSCTL", "ENV", "CONST", "TEST", "SECLABEL", "RUN", "IMPORT"}
TOKEN = re.compile(r'\s*(?P<key>[A-Z]+)(?:\{(?P<attr>[^{}]+)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*'
                   r'"(?P<value>(?:[^"\\]|\\.)*)"\s*(?P<sep>,|$)')
SUBSTITUTION = re.compile(r"\$(?:kernel|number|devpath|id|driver|attr\{[^}]+\}|env\{[^}]+\}|major|minor"
                          r"|result|parent|name|links|root|sys|devnode|\$)"
                          r"|%(?:[knpbdMmcPNrSD%]|s\{[^}]+\}|E\{[^}]+\})")


class Rule:
    def __init__(self, line_no: int, tokens: list[tuple[str, str | None, str, str]]) -> None:
        self.line_no = line_no
        self.tokens = tokens

    def get(self, key: str, attr: str | None = None, ops: tuple[str, ...] = ("=", ":=", "+=")) -> str | None:
        for k, a, op, value in self.tokens:
            if k == key and a == attr and op in ops:
                return value
        return None


def parse_rules(text: str) -> list[Rule]:
    """Rules of a udev rules file, raising AssertionError naming the line on any syntax error."""
    rules: list[Rule] = []
    pending, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = n
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tokens: list[tuple[str, str | None, str, str]] = []
        pos = 0
        while pos < len(stripped):
            m = TOKEN.match(stripped, pos)
            assert m, f"line {start}: cannot read a key=value at column {pos + 1}: {stripped[pos:]!r}"
            key, attr, op, value = m["key"], m["attr"], m["op"], m["value"]
            if op in ("==", "!="):
                assert key in MATCH_KEYS, f"line {start}: {key} cannot be matched"
            else:
                assert key in ASSIGN_KEYS, f"line {start}: {key} cannot be assigned"
            if key in KEYS_WITH_ATTRIBUTE and key not in ("RUN", "IMPORT"):
                assert attr, f"line {start}: {key} needs {{attribute}}"
            if key not in KEYS_WITH_ATTRIBUTE:
                assert attr is None, f"line {start}: {key} takes no {{attribute}}"
            if key in ("LABEL", "GOTO"):
                assert op == "=", f"line {start}: {key} is assigned with ="
            if op not in ("==", "!=") and ("$" in value or "%" in value):
                rest = SUBSTITUTION.sub("", value)
                assert "$" not in rest and "%" not in rest, f"line {start}: unknown substitution in {value!r}"
            tokens.append((key, attr, op, value))
            pos = m.end()
            if m["sep"] == "" and pos < len(stripped):
                raise AssertionError(f"line {start}: missing comma before {stripped[pos:]!r}")
        rules.append(Rule(start, tokens))
    assert not pending, "the file ends inside a continued line"
    return rules


def test_rules_parse_and_every_goto_has_its_label() -> None:
    rules = parse_rules(RULES.read_text())
    labels = [r.get("LABEL") for r in rules if r.get("LABEL")]
    assert len(labels) == len(set(labels)), "a LABEL is defined twice"
    for rule in rules:
        target = rule.get("GOTO")
        if target:
            assert target in labels, f"line {rule.line_no}: GOTO {target} has no LABEL"
            later = [r.line_no for r in rules if r.get("LABEL") == target]
            assert later[0] > rule.line_no, f"line {rule.line_no}: udev only jumps forward"


def test_our_parser_rejects_broken_rules() -> None:
    for broken in ('SUBSYSTEM=="tty" GROUP="halsvc"',  # missing comma
                   'SUBSYSTEM=="tty", GROUP=="halsvc"',  # GROUP is not a match key
                   'FOO=="bar"',
                   'ENV=="x"',
                   'SUBSYSTEM=="tty", SYMLINK+="halsvc/%q"',
                   'SUBSYSTEM=="tty", MODE="0660'):
        with pytest.raises(AssertionError):
            parse_rules(broken)


def test_every_rule_names_a_kind_the_daemon_knows() -> None:
    rules = parse_rules(RULES.read_text())
    named = [(r.line_no, r.get("ENV", "HALSVC_KIND")) for r in rules if r.get("ENV", "HALSVC_KIND")]
    assert named, "no rule sets HALSVC_KIND"
    for line_no, kind in named:
        assert kind in KINDS or kind == "$env{HALSVC_KIND}", f"line {line_no}: unknown kind {kind!r}"
    assert {k for _, k in named} == KINDS, "every kind the daemon knows has hardware to match"


def test_every_kinded_device_gets_group_symlink_and_systemd_tag() -> None:
    rules = parse_rules(RULES.read_text())
    finals = [r for r in rules if ("ENV", "HALSVC_KIND", "==", "?*") in r.tokens and r.get("GROUP")]
    assert len(finals) == 2  # device nodes and whole USB devices
    for rule in finals:
        assert rule.get("GROUP") == "halsvc"
        assert rule.get("MODE") == "0660"
        assert rule.get("TAG") == "systemd"
        link = rule.get("SYMLINK")
        assert link is not None and link.startswith("halsvc/") and "$env{HALSVC_KIND}-" in link


def test_usb_serial_adapters_of_the_issue_are_matched() -> None:
    text = RULES.read_text()
    for vendor in ("0403", "067b", "1a86", "10c4"):  # FTDI, Prolific, CH340, CP210x
        assert f'ATTRS{{idVendor}}=="{vendor}"' in text
    assert ":0b????:" in text  # CCID readers by interface class


@pytest.mark.skipif(shutil.which("udevadm") is None, reason="udevadm not installed")
def test_udevadm_verify_accepts_the_rules() -> None:
    probe = subprocess.run(["udevadm", "verify", "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("this udevadm has no verify (systemd < 253)")
    out = subprocess.run(["udevadm", "verify", "--resolve-names=never", str(RULES)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr + out.stdout


def test_the_daemons_guess_of_a_kind_agrees_with_the_rules() -> None:
    # halsvc.hotplug guesses kinds from USB ids for `halctl devices --hardware` on a machine
    # without our rules; the two tables must say the same.
    if str(RULES.parents[1]) not in sys.path:  # run as `pytest` without the repo on the path
        sys.path.insert(0, str(RULES.parents[1]))
    from halsvc.hotplug import guess_kind

    section_subsystem = {"halsvc_tty": "tty", "halsvc_hidraw": "hidraw", "halsvc_usb": "usb"}
    subsystem = None
    checked = 0
    for rule in parse_rules(RULES.read_text()):
        label = rule.get("LABEL")
        if label:
            subsystem = section_subsystem.get(label)
            continue
        vendor = rule.get("ATTRS", "idVendor", ops=("==",))
        kind = rule.get("ENV", "HALSVC_KIND")
        if subsystem is None or vendor is None or kind is None:
            continue
        product = rule.get("ATTRS", "idProduct", ops=("==",)) or "9999"
        assert guess_kind(subsystem, vendor, product) == kind, f"line {rule.line_no}"
        checked += 1
    assert checked >= 20
    assert guess_kind("usb", "1234", "5678", ":0b0000:") == "idcard"
    assert guess_kind("usb", "1234", "5678", ":070102:") == "printer"
