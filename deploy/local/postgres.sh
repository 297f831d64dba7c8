#!/usr/bin/env bash
# The project's own PostgreSQL cluster for development and tests, from
# Debian's packages, under .local/pg/ on port 55432 (loopback only), so it
# never collides with a system cluster on 5432.
#
#   deploy/local/postgres.sh install  the server packages when missing (apt, as root)
#   deploy/local/postgres.sh start    initdb once, start, ensure role and database "consent"
#   deploy/local/postgres.sh stop     fast shutdown (immediate after a bound)
#   deploy/local/postgres.sh crash    immediate shutdown: the server dies without a
#                                     checkpoint and recovers at the next start (fault tests)
#   deploy/local/postgres.sh status   exit 0 when running (3 when not)
#   deploy/local/postgres.sh url      print the database URL this cluster serves
#   deploy/local/postgres.sh role-urls
#                                     print VARIABLE=URL for each service role
#                                     (docs/security.md), nothing when DATABASE_URL
#                                     names another database
#
# URL served: postgresql://consent:consent@127.0.0.1:55432/consent, the owner's: it
# owns the schemas and runs the migrations. The services connect as roles of their
# own (deploy/postgres/roles.sql), made at every start, with passwords generated
# once into .local/pg-roles.env (PG_ROLES_FILE), shared by every cluster of the clone.
# When DATABASE_URL is set the caller brings its own database: start and
# status do nothing (stop and crash still act on our own cluster if one runs).
#
# A second cluster can run beside the default one: PG_HOME_DIR is its
# directory (default .local/pg; a relative path is from the current
# directory) and PG_PORT its port (default 55432).
#
# The server refuses to run as root: as root, everything runs as the
# unprivileged system user `postgres` (created when missing); otherwise as the
# current user.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ -n "${PG_HOME_DIR:-}" ]]; then
    PG_DIR="$(realpath -m -- "$PG_HOME_DIR")"
else
    PG_DIR="$LOCAL_DIR/pg"
fi
DATA="$PG_DIR/data"
LOG_FILE="$PG_DIR/postgres.log"
PORT="${PG_PORT:-55432}"
if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1024 || PORT > 65535)); then
    die "PG_PORT must be a port in 1024..65535, not '$PORT'"
fi
PG_USER=postgres # the OS user that owns the cluster when we are root
DB_ROLE=consent
DB_PASSWORD=consent
DB_NAME=consent
DB_URL="postgresql://$DB_ROLE:$DB_PASSWORD@127.0.0.1:$PORT/$DB_NAME"
ROLES_FILE="${PG_ROLES_FILE:-$LOCAL_DIR/pg-roles.env}"
# The services' login roles (deploy/postgres/roles.sql), in order, and the variable
# that gives each its URL.
ROLE_LOGINS=(consent_projector_login consent_api_login consent_dispatcher_login consent_audit_login)
declare -A ROLE_URL_VARIABLE=(
    [consent_projector_login]=CONSENT_PROJECTOR_DATABASE_URL
    [consent_api_login]=CONSENT_API_DATABASE_URL
    [consent_dispatcher_login]=DISPATCHER_DATABASE_URL
    [consent_audit_login]=AUDIT_DATABASE_URL
)
STOP_TIMEOUT="${PG_STOP_TIMEOUT:-30}"

# The socket lives beside the data, unless the path would exceed the kernel's
# 107-byte limit for unix socket paths (a deeply nested clone): then /tmp.
# (Named after the clone for the default cluster, as it always was, and after
# its own directory for any other.)
SOCK_DIR="$PG_DIR/run"
if ((${#SOCK_DIR} + 20 > 100)); then
    sock_key="$ROOT"
    [[ "$PG_DIR" == "$LOCAL_DIR/pg" ]] || sock_key="$PG_DIR"
    SOCK_DIR="/tmp/consent-pg-$(printf '%s' "$sock_key" | sha256sum | cut -c1-12)"
fi

# Finds the newest PostgreSQL server binaries (Debian keeps them off PATH).
find_pg_bin() {
    local d
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            echo "$d"
            return 0
        fi
    done
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
    fi
}

ensure_installed() {
    PG_BIN="$(find_pg_bin)"
    [[ -n "$PG_BIN" ]] && return 0
    if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
        note "PostgreSQL server not found: installing Debian's postgresql package"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        PG_BIN="$(find_pg_bin)"
    fi
    [[ -n "$PG_BIN" ]] ||
        die "PostgreSQL server binaries (initdb, pg_ctl) not found: install them (apt-get install -y postgresql) or set DATABASE_URL"
}

# as_owner CMD...: runs CMD as the cluster's owner, from a directory that
# user can read (initdb and pg_ctl complain about an unreadable cwd).
as_owner() {
    if ((EUID == 0)); then
        (cd "$PG_DIR" && runuser -u "$PG_USER" -- "$@")
    else
        (cd "$PG_DIR" && "$@")
    fi
}

# As root: the postgres user must exist, own $PG_DIR, and be able to reach
# it, i.e. traverse every parent directory of the clone.
prepare_owner() {
    mkdir -p "$PG_DIR"
    ((EUID == 0)) || return 0
    if ! id -u "$PG_USER" >/dev/null 2>&1; then
        note "creating the unprivileged system user '$PG_USER' to run the server"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash "$PG_USER"
    fi
    local dir="$PG_DIR"
    while [[ "$dir" != "/" ]]; do
        dir="$(dirname "$dir")"
        if ! runuser -u "$PG_USER" -- test -x "$dir"; then
            # e.g. a clone under /root (mode 700): allow traversal only (no listing).
            note "granting others traversal (o+x) of $dir so user '$PG_USER' can reach $PG_DIR"
            chmod o+x "$dir"
        fi
    done
    chown -R "$PG_USER:" "$PG_DIR"
    if [[ "$SOCK_DIR" != "$PG_DIR/"* ]]; then
        mkdir -p "$SOCK_DIR"
        chown "$PG_USER:" "$SOCK_DIR"
    fi
}

# initdb once, into a scratch directory renamed at the end, so an interrupted
# initdb never leaves a half-made cluster that later starts fail on.
init_cluster() {
    if [[ -f "$DATA/PG_VERSION" ]]; then
        local have want
        have="$(cat "$DATA/PG_VERSION")"
        want="$("$PG_BIN/postgres" --version | grep -oE '[0-9]+' | head -n1)"
        [[ "$have" == "$want" ]] ||
            die "$DATA was made by PostgreSQL $have but the server found is $want: remove $PG_DIR (its data is lost) or install PostgreSQL $have"
        return 0
    fi
    note "initializing a new cluster in $DATA"
    rm -rf "$DATA.tmp"
    # Trust over the unix socket only (a directory only the owner can reach is
    # where the admin connects); TCP clients, the services included, use passwords.
    as_owner "$PG_BIN/initdb" -D "$DATA.tmp" -U postgres --no-locale -E UTF8 \
        --auth-local=trust --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log" >&2; die "initdb failed (output above)"; }
    as_owner mv "$DATA.tmp" "$DATA"
    # Our settings live in a file of their own, rewritten at every start.
    echo "include_if_exists = 'local.conf'" | as_owner tee -a "$DATA/postgresql.conf" >/dev/null
}

write_local_conf() {
    as_owner tee "$DATA/local.conf" >/dev/null <<EOF
# Written by deploy/local/postgres.sh at every start: edit that script instead.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK_DIR'
# Three services with pools, the test suite and benchmarks at once.
max_connections = 200
EOF
    as_owner mkdir -p "$SOCK_DIR"
    chmod 700 "$SOCK_DIR" 2>/dev/null || as_owner chmod 700 "$SOCK_DIR"
}

is_running() {
    [[ -f "$DATA/PG_VERSION" ]] || return 1
    as_owner "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

# A postmaster.pid whose pid now belongs to another process (after a reboot or
# a machine handed over) would make the server refuse to start: remove it when
# that pid is clearly not a postgres of ours.
clear_stale_lock() {
    local lock="$DATA/postmaster.pid" pid
    [[ -f "$lock" ]] || return 0
    pid="$(head -n1 "$lock" | tr -dc '0-9')"
    if [[ -z "$pid" ]] || ! pid_alive "$pid" || [[ "$(pid_cmdline "$pid")" != *postgres* ]]; then
        note "removing stale $lock (pid ${pid:-?} is not a running postgres)"
        rm -f "$lock"
    fi
}

psql_admin() {
    as_owner "$PG_BIN/psql" -h "$SOCK_DIR" -p "$PORT" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -qAtX "$@"
}

ensure_database() {
    psql_admin <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_ROLE') THEN
        -- CREATEDB: tests may make throw-away databases of their own.
        CREATE ROLE $DB_ROLE LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
    END IF;
END
\$\$;
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_ROLE'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME')\gexec
SQL
}

# role_password LOGIN: its password from $ROLES_FILE (empty when it has none).
role_password() {
    [[ -f "$ROLES_FILE" ]] || return 0
    sed -n "s/^$1=//p" "$ROLES_FILE" | head -n1
}

# Generates, readable by this user only, a password for each login role that has
# none yet: an existing file keeps its passwords, a role added later gets one.
ensure_role_passwords() {
    local login missing=()
    for login in "${ROLE_LOGINS[@]}"; do
        [[ -n "$(role_password "$login")" ]] || missing+=("$login")
    done
    ((${#missing[@]})) || return 0
    mkdir -p "$(dirname "$ROLES_FILE")"
    (
        umask 077
        {
            if [[ -f "$ROLES_FILE" ]]; then cat "$ROLES_FILE"; fi
            for login in "${missing[@]}"; do
                # Hex: it goes into URLs as it is.
                echo "$login=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
            done
        } >"$ROLES_FILE.$$.tmp"
    )
    mv "$ROLES_FILE.$$.tmp" "$ROLES_FILE"
    note "generated passwords of the service roles into $ROLES_FILE"
}

# At every start, not only at initdb: clusters made before the roles get them, and
# the passwords follow the file.
ensure_roles() {
    ensure_role_passwords
    local login args=()
    for login in "${ROLE_LOGINS[@]}"; do
        args+=(-v "$login=$(role_password "$login")")
    done
    # Through stdin: as root, the server's user may not be able to read the clone.
    psql_admin "${args[@]}" <"$ROOT/deploy/postgres/roles.sql" >/dev/null
}

cmd_role_urls() {
    if [[ -n "${DATABASE_URL:-}" && "$DATABASE_URL" != "$DB_URL" ]]; then
        note "DATABASE_URL names another database: the services connect as DATABASE_URL"
        return 0
    fi
    local login password
    for login in "${ROLE_LOGINS[@]}"; do
        password="$(role_password "$login")"
        [[ -n "$password" ]] || die "no password for $login in $ROLES_FILE: run '$0 start' first"
        echo "${ROLE_URL_VARIABLE[$login]}=postgresql://$login:$password@127.0.0.1:$PORT/$DB_NAME"
    done
}

cmd_start() {
    if [[ -n "${DATABASE_URL:-}" ]]; then
        note "DATABASE_URL is set: using that database, not starting a local PostgreSQL"
        return 0
    fi
    ensure_installed
    prepare_owner
    init_cluster
    if is_running; then
        local running_port
        running_port="$(sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true)"
        [[ "$running_port" == "$PORT" ]] ||
            die "the cluster of $PG_DIR runs on port ${running_port:-?}, not $PORT: 'postgres.sh stop' it first, or set PG_PORT=${running_port:-?}"
        note "already running on 127.0.0.1:$PORT"
    else
        clear_stale_lock
        require_port_free "$PORT" "the local PostgreSQL of $PG_DIR"
        write_local_conf
        note "starting PostgreSQL on 127.0.0.1:$PORT (log: $LOG_FILE)"
        # -w: return once it accepts connections. pg_ctl detaches the server
        # into its own session, so a Ctrl-C aimed at `make run` spares it.
        as_owner "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOG_FILE" -w -t 60 start >/dev/null ||
            { tail -n 30 "$LOG_FILE" >&2; die "PostgreSQL did not start (log above: $LOG_FILE)"; }
    fi
    ensure_database
    ensure_roles
    note "ready: $DB_URL (service roles: $ROLES_FILE)"
}

cmd_stop() {
    PG_BIN="$(find_pg_bin)"
    if [[ -z "$PG_BIN" ]] || ! is_running; then
        note "not running"
        return 0
    fi
    note "stopping PostgreSQL of $PG_DIR"
    # fast: disconnect clients and shut down cleanly; immediate if that hangs.
    if ! as_owner "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null; then
        note "fast shutdown timed out: immediate shutdown"
        as_owner "$PG_BIN/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null
    fi
    note "stopped"
}

# The server dies as in a power cut, for fault tests: no checkpoint, no clean
# shutdown record; the next start replays the WAL (crash recovery).
cmd_crash() {
    PG_BIN="$(find_pg_bin)"
    if [[ -z "$PG_BIN" ]] || ! is_running; then
        note "not running"
        return 0
    fi
    note "crashing PostgreSQL of $PG_DIR (immediate shutdown: recovery at the next start)"
    as_owner "$PG_BIN/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null
    note "crashed"
}

cmd_status() {
    if [[ -n "${DATABASE_URL:-}" ]]; then
        echo "postgres: DATABASE_URL is set, the local cluster is not used"
        return 0
    fi
    PG_BIN="$(find_pg_bin)"
    if [[ -n "$PG_BIN" ]] && is_running; then
        echo "postgres: running on 127.0.0.1:$PORT ($DB_URL), data in $DATA, log $LOG_FILE"
    else
        echo "postgres: not running"
        return 3
    fi
}

case "${1:-}" in
install)
    if [[ -n "${DATABASE_URL:-}" ]]; then
        note "DATABASE_URL is set: no local PostgreSQL needed"
    else
        ensure_installed
    fi
    ;;
start) cmd_start ;;
stop) cmd_stop ;;
crash) cmd_crash ;;
status) cmd_status ;;
url) echo "$DB_URL" ;;
role-urls) cmd_role_urls ;;
*)
    echo "usage: $0 install|start|stop|crash|status|url|role-urls" >&2
    exit 2
    ;;
esac
