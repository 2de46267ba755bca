#!/usr/bin/env bash
# Install (or remove) the Floorwalker sensor agent on a Raspberry Pi. Idempotent: run it again after
# a git pull to update; your edited configuration under /etc/floorwalker is never overwritten.
#
#   sudo deploy/install-agent.sh --agent agent-1 [--agent agent-2 ...] [--ca /path/to/ca.crt] [--start]
#   sudo deploy/install-agent.sh --uninstall [--purge]
#   deploy/install-agent.sh --root DIR ...      (into a scratch root: image building, tests)
#
# Options:
#   --agent ID     configure and enable floorwalker-agent@ID (device file /etc/floorwalker/devices/ID.toml,
#                  copied from firmware-config/devices/ID.toml, or made from agent-1.toml if that is absent)
#   --ca FILE      the store CA certificate (from floorwalker-broker.sh init) -> /etc/floorwalker/ca.crt
#   --root DIR     install into DIR instead of /: no useradd, no systemctl, files only
#   --no-venv      skip the virtual environment (/opt/floorwalker/venv) step
#   --python PY    the Python (3.11+) to build the virtual environment with (default python3)
#   --system-site-packages
#                  let the virtual environment see Debian's Python packages (apt-get install python3-lgpio:
#                  the GPIO library for Python versions and 32-bit systems PyPI has no lgpio wheel for)
#   --no-enable    install the units without enabling them
#   --start        (re)start the enabled agents now
#   --uninstall    remove units and, if the aggregator is not installed here, /opt/floorwalker;
#                  configuration and data stay
#   --purge        --uninstall and also remove /etc/floorwalker, /var/lib/floorwalker, the user
set -euo pipefail
PROG=install-agent.sh
PROG_ROLE=agent
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

AGENTS=()
CA_FILE=""
SYSTEM_SITE=0
UNIT=floorwalker-agent@.service

# gpiozero drives a Pi 4 and a Pi 5 through lgpio. Without it gpiozero falls back to its experimental
# native pins on a Pi 4 and finds no GPIO at all on a Pi 5, so say so at install time, with the fixes.
check_gpio_library() {
    local py="$ROOT$VENV/bin/python" shown="$VENV/bin/python"
    if [ ! -x "$py" ]; then py="$PYTHON"; shown="$PYTHON"; fi
    if "$py" -c 'import lgpio' >/dev/null 2>&1; then
        say "lgpio: importable by $shown (gpiozero's pin library on a Pi 4 and 5)"
        return
    fi
    say "warning: lgpio is not importable by $shown: on a Pi 4 gpiozero would fall back to its experimental" \
        "native pins, on a Pi 5 it finds no GPIO (ignore this on a machine without GPIO). Either:"
    say "  apt-get install python3-lgpio, then run this script again with --system-site-packages; or"
    say "  $VENV/bin/pip install 'lgpio>=0.2.2' (a wheel for 64-bit Pi OS with Python 3.10-3.12;" \
        "elsewhere apt-get install swig liblgpio-dev first, it builds from source)"
}

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --agent) [ -n "${2:-}" ] || die "--agent needs an agent id"; AGENTS+=("$2"); shift 2; continue ;;
        --ca) [ -n "${2:-}" ] || die "--ca needs a file"; CA_FILE="$2"; shift 2; continue ;;
        --system-site-packages) SYSTEM_SITE=1; shift; continue ;;
        -h|--help) usage; exit 0 ;;
    esac
    common_option "$@"
    [ "$SHIFT" -gt 0 ] || { usage >&2; die "unknown option $1"; }
    shift "$SHIFT"
done
for id in "${AGENTS[@]}"; do
    [[ "$id" =~ ^[A-Za-z0-9_-]{1,64}$ ]] || die "--agent '$id': letters, digits, '-' or '_' only (it names MQTT topics)"
done
if [ -n "$CA_FILE" ]; then
    [ -f "$CA_FILE" ] || die "--ca $CA_FILE: no such file"
    CA_FILE="$(cd "$(dirname "$CA_FILE")" && pwd)/$(basename "$CA_FILE")"
fi
preflight

if [ "$UNINSTALL" = 1 ]; then
    shopt -s nullglob
    for link in "$ROOT$UNIT_DIR"/multi-user.target.wants/floorwalker-agent@*.service; do
        disable_unit "$(basename "$link")"
    done
    remove_path "$UNIT_DIR/$UNIT"
    rmdir_if_empty "$UNIT_DIR/multi-user.target.wants"
    remove_path "/usr/lib/sysusers.d/$SVC_USER-$PROG_ROLE.conf"
    daemon_reload
    uninstall_shared floorwalker-aggregator.service
    say "done: agent uninstalled"
    exit 0
fi

say "step 1/6: service user"
ensure_user gpio dialout
say "step 2/6: directories"
ensure_state_dir
say "step 3/6: virtual environment"
install_venv "[agent]" requirements-agent.lock
if [ "$SYSTEM_SITE" = 1 ]; then
    [ -f "$ROOT$VENV/pyvenv.cfg" ] || die "--system-site-packages: no virtual environment at $VENV (drop --no-venv)"
    sed -i 's/^include-system-site-packages = .*/include-system-site-packages = true/' "$ROOT$VENV/pyvenv.cfg"
    say "$VENV: sees Debian's Python packages (--system-site-packages)"
fi
check_gpio_library
say "step 4/6: configuration in $ETC"
install_store_config
install_config "$DEPLOY/env/agent.env" "$ETC/agent.env" 640
if [ -n "$CA_FILE" ]; then
    install_file "$CA_FILE" "$ETC/ca.crt" 644
elif [ ! -f "$ROOT$ETC/ca.crt" ]; then
    say "$ETC/ca.crt: missing; copy the store CA there (floorwalker-broker.sh init made it) or give --ca FILE"
fi
for id in "${AGENTS[@]}"; do
    device="$ETC/devices/$id.toml"
    if [ -f "$SRC/firmware-config/devices/$id.toml" ]; then
        install_config "$SRC/firmware-config/devices/$id.toml" "$device" 640
    elif [ ! -e "$ROOT$device" ]; then
        tmp="$(mktemp)"
        sed "s/agent-1/$id/g" "$SRC/firmware-config/devices/agent-1.toml" > "$tmp"
        install_config "$tmp" "$device" 640
        rm -f "$tmp"
        say "$device: made from agent-1.toml: edit its sniffers, pins and calibration for this Pi"
    else
        say "$device: kept your file"
    fi
    tmp="$(mktemp)"
    sed "s/@AGENT@/$id/g" "$DEPLOY/env/device.env" > "$tmp"
    install_config "$tmp" "$ETC/devices/$id.env" 640
    rm -f "$tmp"
done
say "step 5/6: systemd unit"
install_file "$DEPLOY/systemd/$UNIT" "$UNIT_DIR/$UNIT" 644
daemon_reload
say "step 6/6: enable"
[ ${#AGENTS[@]} -gt 0 ] || say "no --agent given: nothing enabled (systemctl enable --now floorwalker-agent@ID)"
for id in "${AGENTS[@]}"; do
    enable_unit "floorwalker-agent@$id.service"
done
say "done: agent installed${ROOT:+ into $ROOT}; check a device file with:" \
    "$VENV/bin/floorwalker-agent check --config $ETC/devices/ID.toml"
