#!/bin/sh
# Install halsvc: the Python package, systemd units, udev rules, sysusers/tmpfiles entries and
# an example config. Called by `make install`; honours DESTDIR and PREFIX so a Debian package
# or an image build can stage the tree.
#
#   DESTDIR=/tmp/stage PREFIX=/usr tools/install.sh
#
# Layouts (HALSVC_LAYOUT):
#   venv   (default) a self-contained virtualenv in $PREFIX/lib/halsvc with every dependency,
#          pinned by what pip resolves at build time, and wrappers $PREFIX/bin/halsvc and
#          $PREFIX/bin/halctl. The station image does not depend on which of our libraries
#          (bleak >= 1, pyscard 2.x, ...) the distribution happens to ship. Dependencies come
#          from PyPI, or from a wheelhouse: PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels.
#          The venv is built inside DESTDIR and then relocated (shebangs, activate scripts,
#          byte-code paths), the way dh-virtualenv does it.
#   system the package alone, `pip install --root $DESTDIR --prefix $PREFIX --no-deps`, into
#          the interpreter's site-packages, for a distribution package that declares the
#          dependencies itself. (Debian: set DEB_PYTHON_INSTALL_LAYOUT=deb_system to land in
#          /usr/lib/python3/dist-packages rather than /usr/local.)
#
# Other knobs: PYTHON (base interpreter, default /usr/bin/python3), SYSCONFDIR (default /etc),
# UNITDIR, UDEVRULESDIR, SYSUSERSDIR, TMPFILESDIR, DOCDIR, HALSVC_PIP_ARGS (extra pip
# arguments). With an empty DESTDIR, as root, the live system is also brought up to date
# (users, directories, udev, systemd); with a DESTDIR that is the package's postinst's job.
set -eu

SRC=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
PYTHON=${PYTHON:-/usr/bin/python3}
LAYOUT=${HALSVC_LAYOUT:-venv}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
UDEVRULESDIR=${UDEVRULESDIR:-$PREFIX/lib/udev/rules.d}
SYSUSERSDIR=${SYSUSERSDIR:-$PREFIX/lib/sysusers.d}
TMPFILESDIR=${TMPFILESDIR:-$PREFIX/lib/tmpfiles.d}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/halsvc}
PIP_ARGS=${HALSVC_PIP_ARGS:-}

case $PREFIX in /*) ;; *) echo "install.sh: PREFIX must be absolute: $PREFIX" >&2; exit 2 ;; esac
case $DESTDIR in ''|/*) ;; *) echo "install.sh: DESTDIR must be absolute: $DESTDIR" >&2; exit 2 ;; esac

say() { printf 'install.sh: %s\n' "$*"; }

# pip and venv write into a copy, so a build never leaves build/ or *.egg-info in the checkout
# (another engineer may be running tests in it).
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
tar -C "$SRC" --exclude=./.venv --exclude=./.git --exclude=./run --exclude='*.egg-info' \
    --exclude=./build --exclude='__pycache__' -cf - . | tar -C "$STAGE" -xf -
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_WARN_SCRIPT_LOCATION=1 PIP_ROOT_USER_ACTION=ignore

case $LAYOUT in
venv)
    VENV=$PREFIX/lib/halsvc
    say "virtualenv in $DESTDIR$VENV"
    rm -rf "$DESTDIR$VENV"
    mkdir -p "$(dirname "$DESTDIR$VENV")"
    "$PYTHON" -m venv "$DESTDIR$VENV"
    # shellcheck disable=SC2086 # HALSVC_PIP_ARGS is a list of words on purpose
    "$DESTDIR$VENV/bin/python" -m pip install --no-compile --quiet $PIP_ARGS "$STAGE"
    if [ -n "$DESTDIR" ]; then
        # Every text file that names the staging path must name the final one.
        grep -rlIF --exclude='*.pyc' -- "$DESTDIR$VENV" "$DESTDIR$VENV" | while IFS= read -r f; do
            sed -i "s#$DESTDIR$VENV#$VENV#g" "$f"
        done
    fi
    # Byte-code compiled now, with the final paths in it: the service cannot write
    # __pycache__ under ProtectSystem=strict, so a missing .pyc would be recompiled every start.
    "$DESTDIR$VENV/bin/python" -m compileall -q -j 0 ${DESTDIR:+-s "$DESTDIR" -p /} \
        "$DESTDIR$VENV/lib" >/dev/null
    mkdir -p "$DESTDIR$PREFIX/bin"
    for tool in halsvc halctl; do
        cat > "$DESTDIR$PREFIX/bin/$tool" <<EOF
#!/bin/sh
exec $VENV/bin/$tool "\$@"
EOF
        chmod 0755 "$DESTDIR$PREFIX/bin/$tool"
    done
    DAEMON=$PREFIX/bin/halsvc
    ;;
system)
    say "package into $DESTDIR$PREFIX (dependencies are the distribution's)"
    # Debian's python3 would add /local to a PREFIX under the default scheme (/usr/local/local);
    # deb_system takes PREFIX as given.
    export DEB_PYTHON_INSTALL_LAYOUT=${DEB_PYTHON_INSTALL_LAYOUT:-deb_system}
    # shellcheck disable=SC2086
    "$PYTHON" -m pip install --root "${DESTDIR:-/}" --prefix "$PREFIX" --no-deps --quiet $PIP_ARGS "$STAGE"
    # Where pip put the console script depends on the interpreter's install scheme.
    found=$(cd "${DESTDIR:-/}" && find ".${PREFIX}" -path '*/bin/halsvc' -type f | head -n 1)
    [ -n "$found" ] || { echo "install.sh: pip installed no halsvc script under $PREFIX" >&2; exit 1; }
    DAEMON=${found#.}
    ;;
*)
    echo "install.sh: HALSVC_LAYOUT is venv or system, not $LAYOUT" >&2
    exit 2
    ;;
esac

say "units, udev rules, sysusers/tmpfiles entries, example config"
install -d "$DESTDIR$UNITDIR" "$DESTDIR$UDEVRULESDIR" "$DESTDIR$SYSUSERSDIR" "$DESTDIR$TMPFILESDIR" \
    "$DESTDIR$DOCDIR" "$DESTDIR$SYSCONFDIR/halsvc"
sed -e "s#^ExecStart=/usr/bin/halsvc --config /etc/halsvc/halsvc.toml#ExecStart=$DAEMON --config $SYSCONFDIR/halsvc/halsvc.toml#" \
    -e "s#^ExecStartPre=+/usr/bin/halsvc --config /etc/halsvc/halsvc.toml#ExecStartPre=+$DAEMON --config $SYSCONFDIR/halsvc/halsvc.toml#" \
    -e "s#/usr/share/doc/halsvc/#$DOCDIR/#" \
    "$SRC/systemd/halsvc.service" > "$DESTDIR$UNITDIR/halsvc.service"
sed -e "s#/usr/share/doc/halsvc/#$DOCDIR/#" "$SRC/systemd/halsvc.socket" > "$DESTDIR$UNITDIR/halsvc.socket"
chmod 0644 "$DESTDIR$UNITDIR/halsvc.service" "$DESTDIR$UNITDIR/halsvc.socket"
install -m 0644 "$SRC/udev/70-halsvc.rules" "$DESTDIR$UDEVRULESDIR/70-halsvc.rules"
install -m 0644 "$SRC/systemd/sysusers.d/halsvc.conf" "$DESTDIR$SYSUSERSDIR/halsvc.conf"
sed -e "s#/etc/halsvc#$SYSCONFDIR/halsvc#g" "$SRC/systemd/tmpfiles.d/halsvc.conf" \
    > "$DESTDIR$TMPFILESDIR/halsvc.conf"
chmod 0644 "$DESTDIR$TMPFILESDIR/halsvc.conf"
for doc in README.md HACKING.md; do
    [ -f "$SRC/$doc" ] && install -m 0644 "$SRC/$doc" "$DESTDIR$DOCDIR/$doc"
done
install -m 0644 "$SRC/etc/halsvc/halsvc.toml" "$DESTDIR$DOCDIR/halsvc.toml.example"
# Never overwrite a station's own config; tmpfiles.d gives it to root:halsvc 0640.
if [ ! -e "$DESTDIR$SYSCONFDIR/halsvc/halsvc.toml" ]; then
    install -m 0640 "$SRC/etc/halsvc/halsvc.toml" "$DESTDIR$SYSCONFDIR/halsvc/halsvc.toml"
else
    say "kept the existing $DESTDIR$SYSCONFDIR/halsvc/halsvc.toml"
fi

if [ -z "$DESTDIR" ] && [ "$(id -u)" = 0 ]; then
    say "updating the live system"
    command -v systemd-sysusers >/dev/null && systemd-sysusers "$SYSUSERSDIR/halsvc.conf"
    command -v systemd-tmpfiles >/dev/null && systemd-tmpfiles --create "$TMPFILESDIR/halsvc.conf"
    if command -v udevadm >/dev/null; then
        udevadm control --reload-rules || true
        udevadm trigger --action=change --subsystem-match=tty --subsystem-match=usb \
            --subsystem-match=usbmisc --subsystem-match=hidraw --subsystem-match=gpio || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        say "enable with: systemctl enable --now halsvc.socket halsvc.service"
    fi
else
    say "staged in ${DESTDIR:-/}; on the target run systemd-sysusers, systemd-tmpfiles --create," \
        "udevadm control --reload-rules && udevadm trigger, systemctl daemon-reload"
fi
say "done"
