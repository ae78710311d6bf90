"""tools/install.sh (what `make install` runs): stage into a temporary DESTDIR and check the tree,
that the staged virtualenv is relocated to its final path, and that the example config is valid."""

from __future__ import annotations

import marshal
import os
import pathlib
import shutil
import site
import subprocess
import sys
import tomllib
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
INSTALL = ROOT / "tools" / "install.sh"
EXAMPLE = ROOT / "etc" / "halsvc" / "halsvc.toml"
if str(ROOT) not in sys.path:  # run as `pytest` without the repo on the path
    sys.path.insert(0, str(ROOT))

pytestmark = pytest.mark.skipif(not pathlib.Path("/usr/bin/python3").exists(), reason="no system python3")


def install(destdir: pathlib.Path | None, prefix: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    environ.update(PREFIX=prefix, DESTDIR=str(destdir) if destdir else "", **env)
    # Our dependencies are the test venv's; the staged venv gets only the package itself.
    environ.setdefault("HALSVC_PIP_ARGS", "--no-deps")
    return subprocess.run(["sh", str(INSTALL)], env=environ, capture_output=True, text=True, timeout=600)


def mode(path: pathlib.Path) -> int:
    return path.stat().st_mode & 0o777


def text_files(top: pathlib.Path) -> list[pathlib.Path]:
    out = []
    for path in top.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.suffix != ".pyc":
            if b"\0" not in path.read_bytes()[:8192]:
                out.append(path)
    return out


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    dest = tmp_path_factory.mktemp("destdir")
    out = install(dest, "/usr")
    assert out.returncode == 0, out.stdout + out.stderr
    return dest


def test_tree_has_package_units_rules_and_config(staged: pathlib.Path) -> None:
    expect = {
        "usr/bin/halsvc": 0o755,
        "usr/bin/halctl": 0o755,
        "usr/lib/halsvc/bin/halsvc": 0o755,
        "usr/lib/systemd/system/halsvc.service": 0o644,
        "usr/lib/systemd/system/halsvc.socket": 0o644,
        "usr/lib/udev/rules.d/70-halsvc.rules": 0o644,
        "usr/lib/sysusers.d/halsvc.conf": 0o644,
        "usr/lib/tmpfiles.d/halsvc.conf": 0o644,
        "usr/share/doc/halsvc/halsvc.toml.example": 0o644,
        "etc/halsvc/halsvc.toml": 0o640,
    }
    for rel, perm in expect.items():
        path = staged / rel
        assert path.is_file(), rel
        assert mode(path) == perm, f"{rel}: {oct(mode(path))}"
    site_packages = list(staged.glob("usr/lib/halsvc/lib/python3*/site-packages"))
    assert len(site_packages) == 1
    for package in ("halsvc", "drivers", "protocols"):
        assert (site_packages[0] / package / "__init__.py").is_file(), package
    assert (site_packages[0] / "halsvc" / "hotplug.py").is_file()
    rules = staged / "usr/lib/udev/rules.d/70-halsvc.rules"
    assert rules.read_bytes() == (ROOT / "udev/70-halsvc.rules").read_bytes()


def test_units_point_at_the_installed_daemon_and_config(staged: pathlib.Path) -> None:
    service = (staged / "usr/lib/systemd/system/halsvc.service").read_text()
    assert "\nExecStart=/usr/bin/halsvc --config /etc/halsvc/halsvc.toml\n" in service
    assert "\nExecStartPre=+/usr/bin/halsvc --config /etc/halsvc/halsvc.toml --bridge-token\n" in service
    wrapper = (staged / "usr/bin/halsvc").read_text()
    assert "exec /usr/lib/halsvc/bin/halsvc " in wrapper
    assert "Documentation=file:/usr/share/doc/halsvc/" in service


def test_staged_tree_never_names_the_staging_directory(staged: pathlib.Path) -> None:
    for path in text_files(staged):
        assert str(staged) not in path.read_text(errors="replace"), path
    # byte-code carries the final path too (tracebacks, and no recompiling into a read-only /usr)
    pycs = list(staged.glob("usr/lib/halsvc/lib/python3*/site-packages/halsvc/__pycache__/hotplug.*.pyc"))
    assert pycs, "no byte-code compiled"
    code = marshal.loads(pycs[0].read_bytes()[16:])
    assert code.co_filename.startswith("/usr/lib/halsvc/lib/python3"), code.co_filename
    shebang = (staged / "usr/lib/halsvc/bin/halsvc").read_text().splitlines()[0]
    assert shebang == "#!/usr/lib/halsvc/bin/python"


def test_relocated_venv_runs_from_its_final_place(tmp_path: pathlib.Path) -> None:
    final = tmp_path / "opt" / "halsvc"
    stage = tmp_path / "stage"
    out = install(stage, str(final), SYSCONFDIR=str(tmp_path / "etc"))
    assert out.returncode == 0, out.stdout + out.stderr
    shutil.move(str(stage / final.relative_to("/")), str(final))  # what unpacking the package does
    shutil.rmtree(stage)
    site_dir = next(final.glob("lib/halsvc/lib/python3*/site-packages"))
    # The dependencies the staged venv did not get (--no-deps), borrowed from the test venv.
    (site_dir / "test-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # Without PYTHONPATH: an exported checkout path would win over the installed package.
    probe = subprocess.run([str(final / "lib/halsvc/bin/python"), "-c",
                            "import halsvc, halsvc.hotplug; print(halsvc.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(site_dir))
    if (ROOT / "halsvc" / "daemon.py").exists():
        run = subprocess.run([str(final / "bin" / "halsvc"), "--help"], capture_output=True, text=True,
                             cwd=tmp_path)
        assert run.returncode == 0, run.stderr
    service = (final / "lib/systemd/system/halsvc.service").read_text()
    assert f"ExecStart={final}/bin/halsvc --config {tmp_path}/etc/halsvc/halsvc.toml" in service
    assert f"ExecStartPre=+{final}/bin/halsvc --config {tmp_path}/etc/halsvc/halsvc.toml --bridge-token" \
        in service


def test_system_layout_puts_the_package_in_the_interpreters_site_packages(tmp_path: pathlib.Path) -> None:
    out = install(tmp_path, "/usr/local", HALSVC_LAYOUT="system")
    assert out.returncode == 0, out.stdout + out.stderr
    scripts = list(tmp_path.glob("usr/local/**/bin/halsvc"))
    assert len(scripts) == 1
    daemon = "/" + str(scripts[0].relative_to(tmp_path))
    service = (tmp_path / "usr/local/lib/systemd/system/halsvc.service").read_text()
    assert f"ExecStart={daemon} --config /etc/halsvc/halsvc.toml" in service
    assert f"ExecStartPre=+{daemon} --config /etc/halsvc/halsvc.toml --bridge-token" in service
    packages = [p.parent for p in tmp_path.glob("usr/local/lib/python3*/*-packages/halsvc/__init__.py")]
    assert len(packages) == 1
    assert not (tmp_path / "usr/local/lib/halsvc").exists()  # no venv in this layout


def test_an_existing_station_config_is_kept(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "etc/halsvc/halsvc.toml"
    config.parent.mkdir(parents=True)
    config.write_text("# this station's own config\n")
    out = install(tmp_path, "/usr", HALSVC_LAYOUT="system")
    assert out.returncode == 0, out.stdout + out.stderr
    assert config.read_text() == "# this station's own config\n"
    assert (tmp_path / "usr/share/doc/halsvc/halsvc.toml.example").read_bytes() == EXAMPLE.read_bytes()


def test_relative_prefix_is_refused(tmp_path: pathlib.Path) -> None:
    out = install(tmp_path, "usr")
    assert out.returncode == 2 and "PREFIX must be absolute" in out.stderr


def test_example_config_is_valid() -> None:
    from halsvc import config

    doc: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())
    config.validate(config.TOP_SCHEMA, doc, "config")
    config.validate(config.DAEMON_SCHEMA, doc["daemon"], "daemon")
    for role, rule in doc["roles"].items():
        config.validate(config.ROLE_RULE_SCHEMA, rule, f"roles.{role}")
    assert doc["daemon"]["state_dir"] == "/var/lib/halsvc"
    for dev_id, table in doc["devices"].items():
        assert config.DEVICE_ID.match(dev_id)
        options = {k: v for k, v in table.items() if k not in config.DEVICE_COMMON}
        try:
            cls = config.load_driver(table["driver"])
        except ImportError:
            continue  # that driver is not written yet
        config.validate(cls.options_schema, options, f"devices.{dev_id}")
