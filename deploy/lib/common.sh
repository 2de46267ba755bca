# Shared steps of deploy/install-agent.sh and deploy/install-aggregator.sh (sourced, not run).
#
# Every path goes through "$ROOT" ("" for the real system, a directory for --root), and every
# action on the live system (useradd, chown, systemctl) is skipped in --root mode: there the
# scripts write what would be created (sysusers.d entry, unit files, enablement symlinks) only.
# Each step prints one line saying what it did; a failure prints one "error:" line and exits 1.

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"   # the checkout being installed
DEPLOY="$SRC/deploy"
ROOT=""
PREFIX=/opt/floorwalker
VENV="$PREFIX/venv"
ETC=/etc/floorwalker
STATE=/var/lib/floorwalker
UNIT_DIR=/etc/systemd/system
SVC_USER=floorwalker
PYTHON="${PYTHON:-python3}"
DO_VENV=1
DO_ENABLE=1
DO_START=0
UNINSTALL=0
PURGE=0

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
live() { [ -z "$ROOT" ]; }   # true when installing onto this machine, not into --root

# Parse the options both scripts share; the caller handles its own first (see parse_args).
common_option() {  # common_option "$@" -> sets SHIFT to how many arguments it used, 0 if not ours
    SHIFT=1
    case "$1" in
        --root) [ -n "${2:-}" ] || die "--root needs a directory"; ROOT="${2%/}"; SHIFT=2
                [ -n "$ROOT" ] || die "--root /: leave --root out to install onto this machine" ;;
        --no-venv) DO_VENV=0 ;;
        --no-enable) DO_ENABLE=0 ;;
        --start) DO_START=1 ;;
        --python) PYTHON="${2:-}"; SHIFT=2 ;;
        --uninstall) UNINSTALL=1 ;;
        --purge) UNINSTALL=1; PURGE=1 ;;
        *) SHIFT=0 ;;
    esac
}

preflight() {
    [ -f "$SRC/pyproject.toml" ] || die "$SRC is not a Floorwalker checkout (no pyproject.toml)"
    if live; then
        [ "$(id -u)" = 0 ] || die "installing onto this machine needs root: run it with sudo (or use --root DIR)"
    else
        mkdir -p "$ROOT" || die "cannot create --root $ROOT"
        ROOT="$(cd "$ROOT" && pwd)"
        [ "$ROOT" != / ] || die "--root /: leave --root out to install onto this machine"
        say "installing into $ROOT (no users, no systemctl: writing files only)"
    fi
}

# install_file SRC DEST MODE: our own files (units, sysusers): always the shipped version.
install_file() {
    local src="$1" dest="$ROOT$2" mode="$3"
    mkdir -p "$(dirname "$dest")"
    if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
        chmod "$mode" "$dest"
        say "$2: unchanged"
        return
    fi
    local verb=created
    [ -f "$dest" ] && verb=updated
    install -m "$mode" "$src" "$dest" || die "cannot write $dest"
    say "$2: $verb"
}

# install_config SRC DEST MODE: configuration the store edits: never overwritten once there.
install_config() {
    local src="$1" dest="$ROOT$2" mode="$3"
    mkdir -p "$(dirname "$dest")"
    if [ -e "$dest" ]; then
        if cmp -s "$src" "$dest"; then
            say "$2: unchanged"
        else
            say "$2: kept your edited file (the shipped one is $src)"
        fi
        return
    fi
    install -m "$mode" "$src" "$dest" || die "cannot write $dest"
    live && chgrp "$SVC_USER" "$dest"
    say "$2: created"
}

# Store-wide configuration: the store file, its data files, the plan picture.
install_store_config() {
    mkdir -p "$ROOT$ETC/devices"
    chmod 750 "$ROOT$ETC" "$ROOT$ETC/devices"
    if live; then chgrp "$SVC_USER" "$ROOT$ETC" "$ROOT$ETC/devices"; fi
    local f
    for f in store.toml offers.toml customers.json coupons.json store-plan-pts.png; do
        [ -f "$SRC/firmware-config/$f" ] || continue
        install_config "$SRC/firmware-config/$f" "$ETC/$f" 640
    done
}

# The dedicated user: a sysusers.d entry always (image builds create it at first boot), the user
# itself now on a live install.
ensure_user() {  # ensure_user EXTRA_GROUP...
    local tmp; tmp="$(mktemp)"
    {
        echo "# Floorwalker's service account (written by deploy/install-*.sh)"
        echo "u $SVC_USER - \"Floorwalker shopper sensing\" $STATE /usr/sbin/nologin"
        local g
        for g in "$@"; do
            echo "g $g - -"
            echo "m $SVC_USER $g"
        done
    } > "$tmp"
    install_file "$tmp" "/usr/lib/sysusers.d/$SVC_USER-$PROG_ROLE.conf" 644
    rm -f "$tmp"
    live || return 0
    if ! getent passwd "$SVC_USER" >/dev/null; then
        useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin \
            --comment "Floorwalker shopper sensing" "$SVC_USER" || die "useradd $SVC_USER failed"
        say "user $SVC_USER: created"
    else
        say "user $SVC_USER: exists"
    fi
    for g in "$@"; do
        if ! getent group "$g" >/dev/null; then
            groupadd --system "$g" || die "groupadd $g failed"
            say "group $g: created (not a Raspberry Pi OS image?)"
        fi
        usermod -a -G "$g" "$SVC_USER" || die "usermod -a -G $g $SVC_USER failed"
    done
}

ensure_state_dir() {
    # At boot (after systemd-sysusers made the user): the state directory, and group ownership of the
    # configuration, which an image built with --root could not give a user that did not exist yet.
    local tmp; tmp="$(mktemp)"
    {
        echo "# Floorwalker's directories (written by deploy/install-*.sh)"
        echo "d $STATE 0750 $SVC_USER $SVC_USER -"
        echo "Z $ETC - root $SVC_USER -"
    } > "$tmp"
    install_file "$tmp" "/usr/lib/tmpfiles.d/$SVC_USER.conf" 644
    rm -f "$tmp"
    mkdir -p "$ROOT$STATE"
    chmod 750 "$ROOT$STATE"
    if live; then chown "$SVC_USER:$SVC_USER" "$ROOT$STATE"; fi
    say "$STATE: ready (spool, database)"
}

# A virtual environment under /opt/floorwalker: the exact dependency versions of LOCK (a file in
# deploy/, e.g. requirements-agent.lock for EXTRAS "[agent]"), then this checkout without dependencies.
install_venv() {  # install_venv EXTRAS LOCK
    if [ "$DO_VENV" = 0 ]; then
        say "$VENV: skipped (--no-venv)"
        return
    fi
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (Debian: apt-get install python3 python3-venv)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON is $("$PYTHON" -V 2>&1); Floorwalker needs Python 3.11 or newer"
    local dest="$ROOT$VENV"
    if [ ! -x "$dest/bin/python" ]; then
        "$PYTHON" -m venv "$dest" || die "could not create $dest (Debian: apt-get install python3-venv)"
        say "$VENV: created"
    fi
    # Build from a clean copy: pip builds in the source tree (build/, egg-info), and the checkout
    # may be shared or read-only. Floorwalker is pure Python; an older checkout may still hold a
    # compiled module (*.so) built in place by an editable install, which must not be copied.
    local build; build="$(mktemp -d)"
    tar -C "$SRC" --exclude=__pycache__ --exclude='*.so' -cf - pyproject.toml README.md agent aggregator | tar -C "$build" -xf - \
        || die "cannot copy the sources from $SRC"
    "$dest/bin/python" -m pip install --quiet --disable-pip-version-check -r "$DEPLOY/$2" \
        || { rm -rf "$build"; die "pip install -r $DEPLOY/$2 into $VENV failed (see pip's message above)"; }
    # --no-deps: what floorwalker$1 needs is exactly what the lock installed
    "$dest/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$build" \
        || { rm -rf "$build"; die "pip install of $SRC into $VENV failed (see pip's message above)"; }
    rm -rf "$build"
    if ! live; then
        # A venv is not relocatable: point its scripts at the path it will have on the target.
        grep -rlI --null "$dest" "$dest/bin" "$dest/pyvenv.cfg" | xargs -0 -r sed -i "s|$dest|$VENV|g"
    fi
    say "$VENV: floorwalker$1 installed (dependencies: deploy/$2)"
}

# enable_unit NAME: systemctl on a live system; in --root mode the symlink systemctl would make.
enable_unit() {
    local name="$1" template="$1"
    [ "$DO_ENABLE" = 1 ] || { say "$name: not enabled (--no-enable)"; return; }
    if live; then
        systemctl enable "$name" >/dev/null 2>&1 || die "systemctl enable $name failed"
        say "$name: enabled"
        if [ "$DO_START" = 1 ]; then
            systemctl restart "$name" || die "systemctl restart $name failed (journalctl -u $name)"
            say "$name: started"
        fi
    else
        case "$name" in *@*.service) template="${name%%@*}@.service" ;; esac
        mkdir -p "$ROOT$UNIT_DIR/multi-user.target.wants"
        ln -sfn "$UNIT_DIR/$template" "$ROOT$UNIT_DIR/multi-user.target.wants/$name"
        say "$name: enabled (symlink in $UNIT_DIR/multi-user.target.wants)"
    fi
}

disable_unit() {  # disable_unit NAME
    if live && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now "$1" >/dev/null 2>&1 || true   # absent or never started: nothing to stop
    fi
    rm -f "$ROOT$UNIT_DIR/multi-user.target.wants/$1"
    say "$1: disabled"
}

daemon_reload() {
    if live && [ -d /run/systemd/system ]; then
        systemctl daemon-reload || die "systemctl daemon-reload failed"
    fi
}

remove_path() {  # remove_path /ABSOLUTE/PATH (inside the root)
    case "$1" in /?*) ;; *) die "internal: refusing to remove '$1'" ;; esac
    if [ -e "$ROOT$1" ] || [ -L "$ROOT$1" ]; then
        rm -rf -- "$ROOT$1" || die "cannot remove $ROOT$1"
        say "$1: removed"
    fi
}

rmdir_if_empty() {
    local d
    for d in "$@"; do
        [ -d "$ROOT$d" ] && rmdir "$ROOT$d" 2>/dev/null || true
    done
}

# Shared parts go only when the other component is gone too (agent and aggregator on one host).
uninstall_shared() {  # uninstall_shared OTHER_UNIT_FILE
    if [ -e "$ROOT$UNIT_DIR/$1" ]; then
        say "$VENV, user $SVC_USER: kept ($1 is still installed)"
        return
    fi
    remove_path "$PREFIX"
    remove_path "/usr/lib/tmpfiles.d/$SVC_USER.conf"
    if [ "$PURGE" = 1 ]; then
        remove_path "$ETC"
        remove_path "$STATE"
        if live && getent passwd "$SVC_USER" >/dev/null; then
            userdel "$SVC_USER" && say "user $SVC_USER: removed"
        fi
    else
        say "$ETC and $STATE: kept (your configuration and data; --purge removes them)"
    fi
}
