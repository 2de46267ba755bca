#!/usr/bin/env bash
# Install (or remove) the Floorwalker aggregator on the store server. Idempotent: run it again after
# a git pull to update; your edited configuration under /etc/floorwalker is never overwritten.
#
#   sudo deploy/install-aggregator.sh [--ca /etc/mosquitto/floorwalker/ca.crt] [--start]
#   sudo deploy/install-aggregator.sh --uninstall [--purge]
#   deploy/install-aggregator.sh --root DIR ...   (into a scratch root: image building, tests)
#
# Options:
#   --ca FILE      the store CA certificate (from floorwalker-broker.sh init) -> /etc/floorwalker/ca.crt
#   --root DIR     install into DIR instead of /: no useradd, no systemctl, files only
#   --no-venv      skip the virtual environment (/opt/floorwalker/venv) step
#   --python PY    the Python (3.11+) to build the virtual environment with (default python3)
#   --no-enable    install the unit without enabling it
#   --start        (re)start the aggregator now
#   --uninstall    remove the unit and, if no agent is installed here, /opt/floorwalker;
#                  configuration and data stay
#   --purge        --uninstall and also remove /etc/floorwalker, /var/lib/floorwalker, the user
set -euo pipefail
PROG=install-aggregator.sh
PROG_ROLE=aggregator
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

CA_FILE=""
UNIT=floorwalker-aggregator.service

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --ca) [ -n "${2:-}" ] || die "--ca needs a file"; CA_FILE="$2"; shift 2; continue ;;
        -h|--help) usage; exit 0 ;;
    esac
    common_option "$@"
    [ "$SHIFT" -gt 0 ] || { usage >&2; die "unknown option $1"; }
    shift "$SHIFT"
done
if [ -n "$CA_FILE" ]; then
    [ -f "$CA_FILE" ] || die "--ca $CA_FILE: no such file"
    CA_FILE="$(cd "$(dirname "$CA_FILE")" && pwd)/$(basename "$CA_FILE")"
fi
preflight

if [ "$UNINSTALL" = 1 ]; then
    disable_unit "$UNIT"
    remove_path "$UNIT_DIR/$UNIT"
    rmdir_if_empty "$UNIT_DIR/multi-user.target.wants"
    remove_path "/usr/lib/sysusers.d/$SVC_USER-$PROG_ROLE.conf"
    daemon_reload
    uninstall_shared floorwalker-agent@.service
    say "done: aggregator uninstalled"
    exit 0
fi

say "step 1/6: service user"
ensure_user
say "step 2/6: directories"
ensure_state_dir
say "step 3/6: virtual environment"
install_venv "" requirements.lock
say "step 4/6: configuration in $ETC"
install_store_config
if [ -e "$ROOT$ETC/aggregator.env" ]; then
    install_config "$DEPLOY/env/aggregator.env" "$ETC/aggregator.env" 640
else
    tmp="$(mktemp)"
    token="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
    sed "s/@TOKEN@/$token/" "$DEPLOY/env/aggregator.env" > "$tmp"
    install_config "$tmp" "$ETC/aggregator.env" 640
    rm -f "$tmp"
    say "$ETC/aggregator.env: a random FLOORWALKER_API_TOKEN is in it; put the broker password in MQTT_PASSWORD"
fi
if [ -n "$CA_FILE" ]; then
    install_file "$CA_FILE" "$ETC/ca.crt" 644
elif [ ! -f "$ROOT$ETC/ca.crt" ]; then
    say "$ETC/ca.crt: missing; copy the store CA there (floorwalker-broker.sh init made it) or give --ca FILE"
fi
say "step 5/6: systemd unit"
install_file "$DEPLOY/systemd/$UNIT" "$UNIT_DIR/$UNIT" 644
daemon_reload
say "step 6/6: enable"
enable_unit "$UNIT"
say "done: aggregator installed${ROOT:+ into $ROOT}; check the deployment with:" \
    "$VENV/bin/floorwalker-aggregator check --config-dir $ETC"
