#!/bin/sh
# Bring this machine to what `make run` / `make test` need: Debian packages (only the missing
# ones, with sudo when not root) and the project's virtualenv in .venv. Idempotent and quick
# when nothing is missing, so every make target may call it.
#
#   tools/setup.sh run     what the simulated station needs
#   tools/setup.sh test    that plus what the test suite needs
set -eu
SRC=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
WHAT=${1:-test}
PYTHON=${PYTHON:-python3}
VENV=${VENV:-$SRC/.venv}

# pcscd + vpcd: the CCCD reader stack; dbus: the private bus for the BlueZ stand-in;
# fonts-dejavu-core: the Vietnamese raster font; libpcsclite-dev/pkg-config/gcc: pyscard's build;
# python3-venv/python3-dev: a venv on Debian's own python3 (pyenv or other builds have them).
RUN_PKGS="pcscd vsmartcard-vpcd libpcsclite-dev pkg-config gcc dbus fonts-dejavu-core python3-venv python3-dev"
# umockdev + GObject introspection: udev hot-plug tests; systemd: analyze/socket-activate/sysusers;
# util-linux: setpriv for the other-uid test; udev: udevadm for the rules check; socat: pty pairs
# for manual serial work; chromium: the kiosk page tests (Playwright drives it, nothing downloaded).
TEST_PKGS="umockdev gir1.2-umockdev-1.0 libgirepository1.0-dev libcairo2-dev systemd util-linux udev socat chromium"

pkgs=$RUN_PKGS
[ "$WHAT" = test ] && pkgs="$pkgs $TEST_PKGS"

missing=""
if command -v dpkg-query >/dev/null 2>&1; then
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
fi
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "setup: installing Debian packages:$missing"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086 # a list of package names
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

stamp=$VENV/.halsvc-$WHAT
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when pyproject.toml changed since the last install of this flavour.
if [ ! -f "$stamp" ] || [ "$SRC/pyproject.toml" -nt "$stamp" ]; then
    echo "setup: installing halsvc and its dependencies into $VENV"
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
    extras=""
    [ "$WHAT" = test ] && extras="[test]"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e "$SRC$extras"
    touch "$stamp"
    [ "$WHAT" = test ] && touch "$VENV/.halsvc-run"
fi
exit 0
