#!/usr/bin/env bash
# Floorwalker broker administration: store CA, TLS server certificate, accounts, ACL.
#
#   floorwalker-broker.sh init [--dir DIR] [--port 8883] [--bind ADDR] [--host NAME|IP]... [--conf FILE]
#   floorwalker-broker.sh add-account NAME [--role agent|aggregator|reader] [--password PW]
#                                         [--client-cert] [--dir DIR] [--reload]
#   floorwalker-broker.sh remove-account NAME [--dir DIR] [--reload]
#   floorwalker-broker.sh acl [--dir DIR]          (rewrite the ACL from the accounts list)
#   floorwalker-broker.sh list [--dir DIR]
#   floorwalker-broker.sh add-bridge --store ID --remote HOST[:PORT] --remote-ca FILE --username NAME
#                                    --password PW [--dir DIR] [--conf FILE] [--reload]
#       (on a store broker: forward the store's retained occupancy and availability to a chain broker
#        over TLS; on the chain broker, the store's account is 'add-account ID --role store')
#
# Roles: agent, aggregator, reader (a store broker); store, chain-reader (a chain broker: a store's
# bridge may write only its own occupancy and availability topics; a chain reader may only read them).
#
# DIR (default /etc/mosquitto/floorwalker) holds: ca.key ca.crt (the store CA), server.key server.crt,
# passwd (mosquitto_passwd hashes), accounts (one "name role" per line), acl (generated from accounts),
# clients/NAME.{key,crt} (optional client certificates), mosquitto.conf (also copied to --conf).
# Every step is idempotent: an existing CA, server certificate or account is kept (add-account
# replaces the account's password only when --password is given or the account is new).
set -euo pipefail

PROG=floorwalker-broker.sh
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR=/etc/mosquitto/floorwalker
DAYS_CA=3650
DAYS_CERT=825
BRIDGE_BEGIN="# >>> floorwalker chain bridge (written by $PROG add-bridge; do not edit by hand)"
BRIDGE_END="# <<< floorwalker chain bridge"

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found (Debian: apt-get install $2)"; }

valid_name() { [[ "$1" =~ ^[A-Za-z0-9_-]{1,64}$ ]]; }

# Files mosquitto reads after dropping to its own user must be readable by its group, not by all.
restrict() {  # restrict FILE MODE
    chmod "$2" "$1"
    if [ "$(id -u)" = 0 ] && getent group mosquitto >/dev/null 2>&1; then
        chgrp mosquitto "$1"
    fi
}

new_key() {  # EC P-256: small and fast on a Raspberry Pi
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null \
        || die "openssl could not create the key $1"
    chmod 600 "$1"
}

sign() {  # sign CSR OUT EXTFILE DAYS
    openssl x509 -req -in "$1" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
        -days "$4" -out "$2" -extfile "$3" 2>/dev/null || die "openssl could not sign $2"
}

make_ca() {
    if [ -f "$DIR/ca.crt" ] && [ -f "$DIR/ca.key" ]; then
        say "store CA: kept $DIR/ca.crt"
        return
    fi
    new_key "$DIR/ca.key"
    openssl req -x509 -new -key "$DIR/ca.key" -out "$DIR/ca.crt" -days "$DAYS_CA" \
        -subj "/O=Floorwalker/CN=Floorwalker store CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null || die "openssl could not create the store CA"
    chmod 644 "$DIR/ca.crt"
    say "store CA: created $DIR/ca.crt (copy it to every sensor Pi as /etc/floorwalker/ca.crt; keep ca.key secret)"
}

make_server_cert() {  # make_server_cert NAME...
    if [ -f "$DIR/server.crt" ] && [ -f "$DIR/server.key" ]; then
        say "server certificate: kept $DIR/server.crt"
        return
    fi
    local san="" name
    for name in "$@"; do
        if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then san+="IP:$name,"; else san+="DNS:$name,"; fi
    done
    san="${san%,}"
    local tmp; tmp="$(mktemp -d)"
    new_key "$DIR/server.key"
    openssl req -new -key "$DIR/server.key" -subj "/O=Floorwalker/CN=$1" -out "$tmp/server.csr" 2>/dev/null \
        || die "openssl could not create the server request"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n%s\n%s\n' \
        "extendedKeyUsage=serverAuth" "subjectAltName=$san" > "$tmp/ext"
    sign "$tmp/server.csr" "$DIR/server.crt" "$tmp/ext" "$DAYS_CERT"
    rm -rf "$tmp"
    restrict "$DIR/server.key" 640
    chmod 644 "$DIR/server.crt"
    say "server certificate: created $DIR/server.crt for ${san//,/ }"
}

make_client_cert() {  # make_client_cert NAME
    [ -f "$DIR/ca.key" ] || die "no store CA in $DIR: run '$PROG init' first"
    mkdir -p "$DIR/clients"
    if [ -f "$DIR/clients/$1.crt" ]; then
        say "client certificate: kept $DIR/clients/$1.crt"
        return
    fi
    local tmp; tmp="$(mktemp -d)"
    new_key "$DIR/clients/$1.key"
    openssl req -new -key "$DIR/clients/$1.key" -subj "/O=Floorwalker/CN=$1" -out "$tmp/c.csr" 2>/dev/null \
        || die "openssl could not create the client request"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > "$tmp/ext"
    sign "$tmp/c.csr" "$DIR/clients/$1.crt" "$tmp/ext" "$DAYS_CERT"
    rm -rf "$tmp"
    say "client certificate: created $DIR/clients/$1.crt and .key (copy both to the Pi, key mode 0640 root:floorwalker)"
}

write_acl() {
    local tmp="$DIR/acl.tmp" name role
    {
        echo "# Generated by $PROG from $DIR/accounts; do not edit by hand (run '$PROG acl')."
        echo "# Explicit per-account rules rather than 'pattern ... %u': a pattern applies to every account,"
        echo "# so a read-only consumer could otherwise publish as an agent named like itself."
        echo "# A client may do only what a rule below allows; everything else is refused (publishes dropped)."
        while read -r name role; do
            [ -n "${name:-}" ] || continue
            case "$name" in \#*) continue ;; esac
            echo
            case "$role" in
                agent)
                    echo "# agent: publishes only its own agent-tier topics, reads the store's scenario topic"
                    echo "user $name"
                    echo "topic write floorwalker/+/agents/$name/#"
                    echo "topic read floorwalker/+/scenario" ;;
                aggregator)
                    echo "# aggregator: reads every agent, writes the customer tier and the scenario topic"
                    echo "user $name"
                    echo "topic read floorwalker/+/agents/#"
                    echo "topic readwrite customer/#"
                    echo "topic write floorwalker/+/scenario"
                    # its own retained topics (docs/MQTT.md), Home Assistant discovery, a prefixed customer tier
                    echo "topic readwrite +/customer/#"
                    echo "topic write floorwalker/+/aggregator/#"
                    echo "topic write floorwalker/+/occupancy/#"
                    echo "topic write floorwalker/+/visitors/#"
                    echo "topic write floorwalker/+/shopper/#"
                    echo "topic write homeassistant/#" ;;
                reader)
                    echo "# read-only consumer of the customer tier (dashboards, the retail demo's UI, Home Assistant)"
                    echo "user $name"
                    echo "topic read customer/#"
                    echo "topic read +/customer/#"
                    echo "topic read floorwalker/+/aggregator/#"
                    echo "topic read floorwalker/+/occupancy/#"
                    echo "topic read floorwalker/+/visitors/#"
                    echo "topic read floorwalker/+/shopper/#"
                    echo "topic read floorwalker/+/agents/+/status"
                    echo "topic read homeassistant/#" ;;
                store)
                    echo "# store (chain broker): a store's bridge; only its own occupancy and availability"
                    echo "user $name"
                    echo "topic write floorwalker/$name/occupancy"
                    echo "topic write floorwalker/$name/occupancy/+"
                    echo "topic write floorwalker/$name/agents/+/status" ;;
                chain-reader)
                    echo "# chain reader (chain broker): every store's occupancy and availability, read only"
                    echo "user $name"
                    echo "topic read floorwalker/+/occupancy"
                    echo "topic read floorwalker/+/occupancy/+"
                    echo "topic read floorwalker/+/agents/+/status" ;;
                *) die "$DIR/accounts: unknown role '$role' for '$name' (agent, aggregator, reader, store or chain-reader)" ;;
            esac
        done < "$DIR/accounts"
    } > "$tmp"
    restrict "$tmp" 640
    mv -f "$tmp" "$DIR/acl"
}

reload_broker() {
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
        systemctl reload mosquitto && say "mosquitto reloaded" || die "systemctl reload mosquitto failed"
    else
        say "mosquitto is not running under systemd here: send it SIGHUP to load the new accounts"
    fi
}

cmd_init() {
    local port=8883 bind="" conf="" hosts=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            --port) port="$2"; shift 2 ;;
            --bind) bind="$2"; shift 2 ;;
            --host) hosts+=("$2"); shift 2 ;;
            --conf) conf="$2"; shift 2 ;;
            *) die "init: unknown option $1" ;;
        esac
    done
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "--port: a TCP port, got $port"
    need openssl openssl
    need mosquitto_passwd mosquitto
    mkdir -p "$DIR"
    chmod 755 "$DIR"
    [ ${#hosts[@]} -gt 0 ] || hosts=("$(hostname -f 2>/dev/null || hostname)")
    make_ca
    make_server_cert "${hosts[@]}" localhost 127.0.0.1
    [ -f "$DIR/passwd" ] || { : > "$DIR/passwd"; say "password file: created $DIR/passwd (empty)"; }
    restrict "$DIR/passwd" 640
    [ -f "$DIR/accounts" ] || printf '# name role   (agent | aggregator | reader), managed by %s\n' "$PROG" > "$DIR/accounts"
    write_acl
    say "ACL: wrote $DIR/acl"
    local bridge=""  # a chain bridge written by add-bridge survives a new init
    [ ! -f "$DIR/mosquitto.conf" ] || bridge="$(awk -v b="$BRIDGE_BEGIN" '$0 == b { on = 1 } on { print }' "$DIR/mosquitto.conf")"
    sed -e "s|@DIR@|$DIR|g" -e "s|@PORT@|$port|g" -e "s|@BIND@|$bind|g" -e 's| *$||' \
        "$HERE/mosquitto.conf.in" > "$DIR/mosquitto.conf"
    if [ -n "$bridge" ]; then
        printf '%s\n' "$bridge" >> "$DIR/mosquitto.conf"
        restrict "$DIR/mosquitto.conf" 640
    fi
    say "broker configuration: wrote $DIR/mosquitto.conf (TLS on port $port, no anonymous access)"
    if [ -z "$conf" ] && [ "$DIR" = /etc/mosquitto/floorwalker ] && [ -d /etc/mosquitto/conf.d ]; then
        conf=/etc/mosquitto/conf.d/floorwalker.conf
    fi
    if [ -n "$conf" ]; then
        cp "$DIR/mosquitto.conf" "$conf"
        say "broker configuration: installed $conf (restart mosquitto to apply: systemctl restart mosquitto)"
    fi
}

cmd_add_account() {
    local name="${1:-}" role=agent password="" client_cert=0 reload=0
    [ -n "$name" ] && [ "${name#-}" = "$name" ] || die "add-account: give the account name first (the agent id for an agent)"
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            --role) role="$2"; shift 2 ;;
            --password) password="$2"; shift 2 ;;
            --client-cert) client_cert=1; shift ;;
            --reload) reload=1; shift ;;
            *) die "add-account: unknown option $1" ;;
        esac
    done
    valid_name "$name" || die "account name '$name': letters, digits, '-' or '_' only (it is part of MQTT topics)"
    case "$role" in
        agent|aggregator|reader|store|chain-reader) ;;
        *) die "--role: agent, aggregator, reader, store or chain-reader, got '$role'" ;;
    esac
    [ -f "$DIR/accounts" ] && [ -f "$DIR/passwd" ] || die "no broker set up in $DIR: run '$PROG init' first"
    need mosquitto_passwd mosquitto
    local existing; existing="$(awk -v n="$name" '$1 == n { print $2 }' "$DIR/accounts")"
    if [ -n "$existing" ] && [ "$existing" != "$role" ]; then
        die "account '$name' exists with role '$existing'; remove it first to change its role"
    fi
    local show_password=0
    if [ -z "$existing" ] || [ -n "$password" ]; then
        if [ -z "$password" ]; then
            password="$(openssl rand -base64 18 | tr -d '/+=' | cut -c1-20)"
            show_password=1
        fi
        mosquitto_passwd -b "$DIR/passwd" "$name" "$password" || die "mosquitto_passwd failed for '$name'"
        restrict "$DIR/passwd" 640
        say "account '$name' ($role): password set in $DIR/passwd"
    else
        say "account '$name' ($role): kept (give --password to change it)"
    fi
    [ -n "$existing" ] || echo "$name $role" >> "$DIR/accounts"
    write_acl
    say "ACL: wrote $DIR/acl"
    [ "$client_cert" = 0 ] || make_client_cert "$name"
    if [ "$show_password" = 1 ]; then
        echo "password=$password"
        case "$role" in
            agent) say "put it in the Pi's /etc/floorwalker/devices/$name.env as MQTT_PASSWORD=... (not shown again)" ;;
            aggregator) say "put it in /etc/floorwalker/aggregator.env as MQTT_PASSWORD=... (not shown again)" ;;
            reader|chain-reader) say "give it to the consumer with the CA certificate $DIR/ca.crt (not shown again)" ;;
            store) say "give it to store '$name' for its add-bridge, with $DIR/ca.crt (not shown again)" ;;
        esac
    fi
    [ "$reload" = 0 ] || reload_broker
}

cmd_remove_account() {
    local name="${1:-}" reload=0
    [ -n "$name" ] || die "remove-account: give the account name"
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            --reload) reload=1; shift ;;
            *) die "remove-account: unknown option $1" ;;
        esac
    done
    [ -f "$DIR/accounts" ] || die "no broker set up in $DIR: run '$PROG init' first"
    if ! awk -v n="$name" '$1 == n { found = 1 } END { exit !found }' "$DIR/accounts"; then
        say "account '$name': not present, nothing to do"
        return
    fi
    mosquitto_passwd -D "$DIR/passwd" "$name" >/dev/null || die "mosquitto_passwd -D failed for '$name'"
    awk -v n="$name" '$1 != n' "$DIR/accounts" > "$DIR/accounts.tmp" && mv -f "$DIR/accounts.tmp" "$DIR/accounts"
    rm -f "$DIR/clients/$name.crt" "$DIR/clients/$name.key"
    write_acl
    say "account '$name': removed (password, ACL rules, client certificate)"
    [ "$reload" = 0 ] || reload_broker
}

cmd_add_bridge() {
    local store="" remote="" remote_ca="" username="" password="" conf="" reload=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --store) store="$2"; shift 2 ;;
            --remote) remote="$2"; shift 2 ;;
            --remote-ca) remote_ca="$2"; shift 2 ;;
            --username) username="$2"; shift 2 ;;
            --password) password="$2"; shift 2 ;;
            --dir) DIR="$2"; shift 2 ;;
            --conf) conf="$2"; shift 2 ;;
            --reload) reload=1; shift ;;
            *) die "add-bridge: unknown option $1" ;;
        esac
    done
    valid_name "$store" || die "--store: the store id (letters, digits, '-' or '_'), got '$store'"
    [ -n "$remote" ] || die "--remote: the chain broker as HOST or HOST:PORT"
    [ -f "$remote_ca" ] || die "--remote-ca: the chain broker's CA certificate file, '$remote_ca' does not exist"
    valid_name "$username" || die "--username: the store's account on the chain broker, got '$username'"
    [ -n "$password" ] || die "--password: the store's password on the chain broker"
    [ -f "$DIR/mosquitto.conf" ] || die "no broker set up in $DIR: run '$PROG init' first"
    local host="${remote%:*}" port="${remote##*:}"
    [ "$host" != "$remote" ] || port=8883
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "--remote: a TCP port, got $port"
    cp "$remote_ca" "$DIR/chain-ca.crt.tmp" && chmod 644 "$DIR/chain-ca.crt.tmp" && mv -f "$DIR/chain-ca.crt.tmp" "$DIR/chain-ca.crt"
    local prefix="floorwalker/$store/" tmp="$DIR/mosquitto.conf.tmp"
    # Everything before the old block (if any), then the new one: mosquitto attaches every bridge
    # option to the last 'connection', so the block stays at the end of the file.
    awk -v b="$BRIDGE_BEGIN" '$0 == b { exit } { print }' "$DIR/mosquitto.conf" > "$tmp"
    {
        echo "$BRIDGE_BEGIN"
        echo "# Only the retained occupancy and availability topics cross, out only, under floorwalker/$store/."
        echo "connection floorwalker-chain"
        echo "address $host:$port"
        echo "bridge_cafile $DIR/chain-ca.crt"
        echo "bridge_insecure false"
        echo "bridge_protocol_version mqttv311"
        echo "remote_clientid floorwalker-bridge-$store"
        echo "remote_username $username"
        echo "remote_password $password"
        echo "try_private false"
        echo "notifications false"
        echo "cleansession false"
        echo "restart_timeout 5 60"
        echo "topic occupancy out 1 $prefix $prefix"
        echo "topic occupancy/+ out 1 $prefix $prefix"
        echo "topic agents/+/status out 1 $prefix $prefix"
        echo "$BRIDGE_END"
    } >> "$tmp"
    restrict "$tmp" 640  # it holds the bridge's password
    mv -f "$tmp" "$DIR/mosquitto.conf"
    say "bridge: store '$store' -> $host:$port (TLS, account '$username') in $DIR/mosquitto.conf"
    if [ -z "$conf" ] && [ "$DIR" = /etc/mosquitto/floorwalker ] && [ -d /etc/mosquitto/conf.d ]; then
        conf=/etc/mosquitto/conf.d/floorwalker.conf
    fi
    if [ -n "$conf" ]; then
        cp "$DIR/mosquitto.conf" "$conf"
        restrict "$conf" 640
        say "broker configuration: installed $conf (restart mosquitto to apply: systemctl restart mosquitto)"
    fi
    [ "$reload" = 0 ] || reload_broker
}

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

main() {
    local cmd="${1:-}"
    [ $# -eq 0 ] || shift
    case "$cmd" in
        init) cmd_init "$@" ;;
        add-account) cmd_add_account "$@" ;;
        remove-account) cmd_remove_account "$@" ;;
        add-bridge) cmd_add_bridge "$@" ;;
        acl)
            [ "${1:-}" != --dir ] || DIR="$2"
            [ -f "$DIR/accounts" ] || die "no broker set up in $DIR: run '$PROG init' first"
            write_acl; say "ACL: wrote $DIR/acl" ;;
        list)
            [ "${1:-}" != --dir ] || DIR="$2"
            [ -f "$DIR/accounts" ] || die "no broker set up in $DIR: run '$PROG init' first"
            grep -v '^#' "$DIR/accounts" || true ;;
        -h|--help|help) usage ;;
        *) usage >&2; die "unknown command '${cmd}'" ;;
    esac
}

main "$@"
