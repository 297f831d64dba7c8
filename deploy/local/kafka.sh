#!/usr/bin/env bash
# Real Apache Kafka (KRaft) for development and tests, without Docker: one
# broker, or a cluster of several, from jars that come from Maven Central
# through deploy/kafka/pom.xml. Each instance keeps what it writes in a
# directory of its own (.local/kafka by default).
#
#   deploy/local/kafka.sh fetch      copy the jars into .local/kafka/libs (skipped when up to date)
#   deploy/local/kafka.sh start      fetch, format storage once, start every node that is not
#                                    running, wait until each node answers and sees all of them
#   deploy/local/kafka.sh stop       SIGTERM every node of the instance, wait, SIGKILL after a bound
#   deploy/local/kafka.sh status     one line per node; exit 0 when all run (3 when any does not)
#   deploy/local/kafka.sh bootstrap  print the bootstrap string (127.0.0.1:19092,127.0.0.1:29092,...)
#   deploy/local/kafka.sh kill NODE  SIGKILL node NODE (1..N), as a crash would: for fault tests
#   deploy/local/kafka.sh pid NODE   print the pid of node NODE (exit 3 when it does not run)
#   deploy/local/kafka.sh replication-factor
#                                    print the replication factor topics want here (1, or 3)
#
# Environment:
#   KAFKA_BROKERS   nodes (default 1). Each is broker and controller, and the
#                   controller quorum is all of them. With 3, every partition,
#                   the internal topics' included, has 3 replicas of which 2
#                   must have a record before acks=all acknowledges it.
#   KAFKA_PORTS     the nodes' broker ports, space-separated, one per node; a
#                   node's controller listens on its broker port + 1. Default:
#                   9092 for one node, 19092 29092 39092 for three (N9092 up to 5).
#   KAFKA_HOME_DIR  the instance directory (default .local/kafka; a relative
#                   path is from the current directory). The jars in
#                   .local/kafka/libs serve every instance: fetched once.
#   KAFKA_SECURED   1: clients authenticate with SASL/SCRAM-SHA-512 and may do only
#                   what an ACL grants (deploy/kafka/secured.properties.in). The
#                   instance is another one, formatted with the users' passwords:
#                   default directory .local/kafka-secured, default ports 9094 for
#                   one node and 19094 29094 39094 for three, so it never meets the
#                   PLAINTEXT instance's data or clients.
#   KAFKA_USERS_FILE  the users' passwords (default .local/kafka-users.env, made
#                   once; lib.sh). The storage is formatted with them: kafka.sh
#                   refuses to start an instance whose file has changed since.
#
# One node keeps server.properties, data/, kafka.pid and kafka.log at the top
# of the instance directory (the layout of every earlier run); the nodes of a
# cluster keep theirs in node1/ .. nodeN/. stop stops both, whatever
# KAFKA_BROKERS says, so `make down` leaves nothing running.
#
# Every subcommand is idempotent: a second start on a running instance is a
# no-op, start after a kill restarts just the dead node, and a pid file left
# by a killed node does not break the next start.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POM="$ROOT/deploy/kafka/pom.xml"
TEMPLATE="$ROOT/deploy/kafka/server.properties.in"
LOG4J_CONFIG="$ROOT/deploy/kafka/log4j2.properties"
SECURED_TEMPLATE="$ROOT/deploy/kafka/secured.properties.in"
SECURED=0
if kafka_secured; then SECURED=1; fi

# The jars, shared by every instance: fetching them takes a minute, and an
# instance for fault tests must not need the network.
JARS_HOME="$LOCAL_DIR/kafka"
LIBS="$JARS_HOME/libs"
LIBS_STAMP="$JARS_HOME/libs.sha256" # sha256 of the pom the jars came from

if [[ -n "${KAFKA_HOME_DIR:-}" ]]; then
    # Absolute and normalised: the config path in each node's command line is
    # how a later call recognises the node as ours.
    KAFKA_HOME_DIR="$(realpath -m -- "$KAFKA_HOME_DIR")"
    OTHER_DEFAULT_HOME=""
elif ((SECURED)); then
    KAFKA_HOME_DIR="$LOCAL_DIR/kafka-secured"
    OTHER_DEFAULT_HOME="$LOCAL_DIR/kafka"
else
    KAFKA_HOME_DIR="$LOCAL_DIR/kafka"
    OTHER_DEFAULT_HOME="$LOCAL_DIR/kafka-secured"
fi
# What the storage was formatted for: "plaintext", or "scram" and the sha256 of
# the users file (an instance formatted before this stamp existed is plaintext).
SECURITY_STAMP="$KAFKA_HOME_DIR/security.stamp"
CLUSTER_ID_FILE="$KAFKA_HOME_DIR/cluster.id"

START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}" # seconds until every node must answer
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"   # seconds of clean shutdown before SIGKILL

BROKERS="${KAFKA_BROKERS:-1}"
[[ "$BROKERS" =~ ^[1-9][0-9]*$ ]] || die "KAFKA_BROKERS must be a number of nodes (1 or 3), not '$BROKERS'"
# Three replicas at most, one fewer in sync than replicas (at least one): on
# three nodes the loss of one neither loses an acknowledged record nor stops
# writes.
REPLICATION_FACTOR=$((BROKERS < 3 ? BROKERS : 3))
MIN_ISR=$((REPLICATION_FACTOR > 1 ? REPLICATION_FACTOR - 1 : 1))

# The broker ports, one per node (node i is BROKER_PORTS[i-1]); a secured
# instance's defaults are two above, past the PLAINTEXT one's controller port.
BROKER_PORTS=()
DEFAULT_PORT=$((SECURED ? 9094 : 9092))
load_ports() {
    local port i seen=" "
    if [[ -n "${KAFKA_PORTS:-}" ]]; then
        read -r -a BROKER_PORTS <<<"${KAFKA_PORTS//,/ }"
        ((${#BROKER_PORTS[@]} == BROKERS)) ||
            die "KAFKA_PORTS names ${#BROKER_PORTS[@]} port(s) for $BROKERS node(s): give one broker port per node"
    elif ((BROKERS == 1)); then
        BROKER_PORTS=("$DEFAULT_PORT")
    elif ((BROKERS <= 5)); then
        for ((i = 1; i <= BROKERS; i++)); do BROKER_PORTS+=($((i * 10000 + DEFAULT_PORT))); done
    else
        die "set KAFKA_PORTS (one broker port per node) for more than 5 nodes"
    fi
    for port in "${BROKER_PORTS[@]}"; do
        if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1024 || port > 65534)); then
            die "KAFKA_PORTS: '$port' is not a port in 1024..65534"
        fi
        # Each node takes its broker port and the next one (its controller).
        [[ "$seen" != *" $port "* && "$seen" != *" $((port + 1)) "* ]] ||
            die "KAFKA_PORTS: the ports $port and $((port + 1)) overlap another node's"
        seen+="$port $((port + 1)) "
    done
}

node_dir() {
    if ((BROKERS == 1)); then echo "$KAFKA_HOME_DIR"; else echo "$KAFKA_HOME_DIR/node$1"; fi
}

broker_port() { echo "${BROKER_PORTS[$1 - 1]}"; }

bootstrap_string() {
    local i out=""
    for ((i = 1; i <= BROKERS; i++)); do out+="${out:+,}127.0.0.1:$(broker_port "$i")"; done
    echo "$out"
}

require_node_arg() {
    if ! [[ "${1:-}" =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > BROKERS)); then
        die "give a node number from 1 to $BROKERS (KAFKA_BROKERS=$BROKERS), not '${1:-}'"
    fi
}

require_java() {
    command -v java >/dev/null 2>&1 ||
        die "java not found: Kafka needs a JRE 17+ (apt-get install -y openjdk-17-jre-headless)"
}

pom_sha() {
    sha256sum "$POM" | cut -d' ' -f1
}

# The pid of the node whose files are in DIR, when it runs: from its pid file,
# or, when that is missing or stale, the process with its config on its command
# line (a pid file deleted by hand must not make us start a second one or miss
# a stop).
node_pid() {
    local dir="$1" conf="$1/server.properties" pid
    pid="$(live_pid_from_file "$dir/kafka.pid" "kafka.Kafka $conf")"
    if [[ -z "$pid" ]]; then
        pid="$(pids_with_arg "$conf" "kafka.Kafka $conf" | head -n1)"
        if [[ -n "$pid" ]]; then
            echo "$pid" >"$dir/kafka.pid"
            note "found the node of $dir running without its pid file (pid $pid)"
        fi
    fi
    echo "$pid"
}

# Every node directory of the instance (or of the instance in directory $1),
# whatever KAFKA_BROKERS says now: the single node's (the instance directory
# itself) and node1/ .. nodeN/.
all_node_dirs() {
    local home="${1:-$KAFKA_HOME_DIR}" dir
    if [[ -f "$home/server.properties" || -f "$home/kafka.pid" ]]; then
        echo "$home"
    fi
    for dir in "$home"/node[0-9]*; do
        if [[ -d "$dir" ]]; then echo "$dir"; fi
    done
}

node_name() {
    if [[ "$1" == "$KAFKA_HOME_DIR" ]]; then echo "kafka"; else echo "kafka $(basename "$1")"; fi
}

cmd_fetch() {
    local want
    want="$(pom_sha)"
    if [[ -f "$LIBS_STAMP" && "$(cat "$LIBS_STAMP")" == "$want" ]] &&
        compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null; then
        return 0 # the jars of this very pom are there
    fi
    # Swapping jars under a running JVM would break its lazy class loading, and
    # every instance runs from these.
    if [[ -n "$(pids_with_arg "$LIBS/*" "kafka.Kafka")" ]]; then
        note "the jars are missing or not those of deploy/kafka/pom.xml, but a broker runs from them: 'kafka.sh stop' every instance, then 'start' to refresh them"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found: the broker's jars come from Maven Central (apt-get install -y maven)"
    note "fetching the Kafka jars from Maven Central (deploy/kafka/pom.xml)"
    mkdir -p "$JARS_HOME"
    # Copy into a scratch folder and swap it in at the end, so an interrupted
    # fetch never leaves a half-filled libs/ that looks complete.
    # Maven's output goes to a file: even with -q it prints ANSI resets, and
    # it is only worth reading when it fails.
    rm -rf "$LIBS.tmp"
    if ! mvn -q -B -f "$POM" \
        org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" >"$JARS_HOME/fetch.log" 2>&1; then
        cat "$JARS_HOME/fetch.log" >&2
        die "maven could not assemble the Kafka classpath (output above)"
    fi
    compgen -G "$LIBS.tmp/kafka_2.13-*.jar" >/dev/null || die "maven ran but copied no kafka_2.13 jar"
    rm -rf "$LIBS"
    mv "$LIBS.tmp" "$LIBS"
    echo "$want" >"$LIBS_STAMP"
    note "jars ready: $(find "$LIBS" -name '*.jar' | wc -l) files in $LIBS"
}

# Escapes a value for the replacement side of a sed s|||.
sed_escape() {
    printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'
}

quorum_voters() {
    local i out=""
    for ((i = 1; i <= BROKERS; i++)); do out+="${out:+,}$i@127.0.0.1:$(($(broker_port "$i") + 1))"; done
    echo "$out"
}

# The config template, and under KAFKA_SECURED=1 without the keys that
# secured.properties.in sets, followed by it: each key is set once.
config_template() {
    if ((SECURED)); then
        awk -F= 'NR == FNR { if ($0 ~ /^[a-z]/) secured[$1] = 1; next } !($1 in secured)' \
            "$SECURED_TEMPLATE" "$TEMPLATE"
        cat "$SECURED_TEMPLATE"
    else
        cat "$TEMPLATE"
    fi
}

render_config() {
    local node="$1" dir port config
    dir="$(node_dir "$node")"
    port="$(broker_port "$node")"
    mkdir -p "$dir/data"
    config_template | sed -e "s|@NODE_ID@|$node|g" \
        -e "s|@BROKER_PORT@|$port|g" \
        -e "s|@CONTROLLER_PORT@|$((port + 1))|g" \
        -e "s|@QUORUM_VOTERS@|$(sed_escape "$(quorum_voters)")|g" \
        -e "s|@LOG_DIRS@|$(sed_escape "$dir/data")|g" \
        -e "s|@REPLICATION_FACTOR@|$REPLICATION_FACTOR|g" \
        -e "s|@MIN_ISR@|$MIN_ISR|g" >"$dir/server.properties.tmp"
    if ((SECURED)); then
        # In bash, not sed: a password never appears on a command line.
        chmod 600 "$dir/server.properties.tmp"
        config="$(cat "$dir/server.properties.tmp")"
        printf '%s\n' "${config//@ADMIN_PASSWORD@/$(kafka_password admin)}" >"$dir/server.properties.tmp"
    fi
    local unfilled
    unfilled="$(grep -v '^#' "$dir/server.properties.tmp" | grep -o '@[A-Z_]*@' | head -n1 || true)"
    [[ -z "$unfilled" ]] || die "$TEMPLATE has a placeholder kafka.sh does not fill: $unfilled"
    mv "$dir/server.properties.tmp" "$dir/server.properties"
}

# The instance's cluster id, made once and kept in a file, so that a node
# formatted later (a new node, or one whose data/ was deleted) joins the same
# cluster.
cluster_id() {
    local id
    if [[ -s "$CLUSTER_ID_FILE" ]]; then
        cat "$CLUSTER_ID_FILE"
        return 0
    fi
    id="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    [[ -n "$id" ]] || die "kafka.tools.StorageTool random-uuid printed nothing"
    mkdir -p "$KAFKA_HOME_DIR"
    echo "$id" >"$CLUSTER_ID_FILE"
    echo "$id"
}

# Formats the storage of the given nodes that are not formatted yet (their
# data/meta.properties says they are), in parallel: each format is a JVM start.
format_storage() {
    local node dir id pids=() nodes=() i failed=""
    for node in "$@"; do
        dir="$(node_dir "$node")"
        [[ -f "$dir/data/meta.properties" ]] && continue
        [[ -n "${id:-}" ]] || id="$(cluster_id)"
        note "formatting $dir/data (cluster id $id, node $node)"
        (umask 077 && storage_tool_args "$dir" "$id" >"$dir/format.args")
        java -Dlog4j2.configurationFile="$LOG4J_CONFIG" "@$dir/format.args" >>"$dir/kafka.log" 2>&1 &
        pids+=("$!")
        nodes+=("$node")
    done
    for i in "${!pids[@]}"; do
        if ! wait "${pids[$i]}"; then
            dir="$(node_dir "${nodes[$i]}")"
            tail -n 20 "$dir/kafka.log" >&2
            failed+=" ${nodes[$i]}"
        fi
    done
    for node in "$@"; do rm -f "$(node_dir "$node")/format.args"; done
    [[ -z "$failed" ]] || die "formatting the storage of node(s)$failed failed (log above, kafka.log of each)"
    if ((${#pids[@]} > 0)); then security_stamp >"$SECURITY_STAMP"; fi
}

# The StorageTool's command line for the node in DIR, one quoted argument a line:
# java reads it from a file (java @file), readable by its owner only, because
# under KAFKA_SECURED=1 it holds every user's password (--add-scram), which a
# command line would show to every user of the machine.
storage_tool_args() {
    local dir="$1" id="$2" name arg args
    args=(-cp "$LIBS/*" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties")
    if ((SECURED)); then
        for name in "${KAFKA_PRINCIPALS[@]}"; do
            args+=(--add-scram "SCRAM-SHA-512=[name=$name,password=$(kafka_password "$name")]")
        done
    fi
    for arg in "${args[@]}"; do printf '"%s"\n' "${arg//\\/\\\\}"; done
}

security_stamp() {
    if ((SECURED)); then
        echo "scram $(sha256sum <"$KAFKA_USERS_FILE" | cut -d' ' -f1)"
    else
        echo "plaintext"
    fi
}

# Refuses an instance whose storage was formatted for other users, or none: its
# brokers could not authenticate each other, or would serve clients unchecked.
check_security_stamp() {
    local dir formatted="" have want
    while IFS= read -r dir; do
        if [[ -f "$dir/data/meta.properties" ]]; then formatted=1; fi
    done < <(all_node_dirs)
    [[ -n "$formatted" ]] || return 0
    have="$(cat "$SECURITY_STAMP" 2>/dev/null || echo plaintext)"
    want="$(security_stamp)"
    [[ "$have" != "$want" ]] || return 0
    case "$have,$want" in
    plaintext,*) die "$KAFKA_HOME_DIR was formatted without KAFKA_SECURED=1: it has no users. Use another KAFKA_HOME_DIR (the default under KAFKA_SECURED=1 is .local/kafka-secured), or 'kafka.sh stop' it and delete it to start afresh" ;;
    *,plaintext) die "$KAFKA_HOME_DIR was formatted for KAFKA_SECURED=1: set it, or use another KAFKA_HOME_DIR" ;;
    *) die "the passwords in $KAFKA_USERS_FILE are not those $KAFKA_HOME_DIR was formatted with: restore that file, or 'kafka.sh stop' the instance and delete $KAFKA_HOME_DIR to start afresh" ;;
    esac
}

# Starts node NODE in the background and prints its pid.
launch_node() {
    local node="$1" dir pid
    dir="$(node_dir "$node")"
    note "starting $(node_name "$dir") on 127.0.0.1:$(broker_port "$node") (log: $dir/kafka.log)"
    # setsid: the node gets its own session, so a Ctrl-C meant for `make run`
    # (or a terminal closing) does not kill the shared infrastructure.
    # The wrapper writes its own pid and then execs java, so the pid file holds
    # the JVM's pid whether or not setsid had to fork.
    rm -f "$dir/kafka.pid"
    # shellcheck disable=SC2016  # expanded by the inner bash
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/kafka.pid" \
        java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J_CONFIG" \
        -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
        </dev/null >>"$dir/kafka.log" 2>&1 &
    for _ in {1..50}; do
        [[ -s "$dir/kafka.pid" ]] && break
        sleep 0.1
    done
    pid="$(tr -dc '0-9' <"$dir/kafka.pid" 2>/dev/null || true)"
    [[ -n "$pid" ]] || die "node $node did not start (no pid written; see $dir/kafka.log)"
    echo "$pid"
}

# Waits until every node answers an admin client bootstrapped from it alone and
# sees all the nodes as brokers; gives up early when one of PIDS has died.
wait_ready() {
    local args=() pid
    for pid in "$@"; do args+=(--pid "$pid"); done
    (
        use_kafka_principal admin # the clients of a secured instance must authenticate
        exec "$VENV_PYTHON" "$ROOT/deploy/local/wait_kafka.py" --bootstrap "$(bootstrap_string)" \
            --brokers "$BROKERS" --each --timeout "$START_TIMEOUT" "${args[@]}"
    )
}

show_log_tails() {
    local node dir
    for node in "$@"; do
        dir="$(node_dir "$node")"
        echo "---- last lines of $dir/kafka.log ----" >&2
        tail -n 30 "$dir/kafka.log" >&2 2>/dev/null || echo "(no log)" >&2
    done
    echo "----" >&2
}

cmd_start() {
    require_venv # the readiness check uses the project's aiokafka
    [[ -f "$TEMPLATE" ]] || die "missing $TEMPLATE"
    load_ports
    if ((SECURED)); then ensure_kafka_users; fi
    check_security_stamp
    require_java
    cmd_fetch

    local node dir pid running_port pids=() to_start=() started=()
    # Check everything before starting anything.
    for ((node = 1; node <= BROKERS; node++)); do
        dir="$(node_dir "$node")"
        pid="$(node_pid "$dir")"
        if [[ -n "$pid" ]]; then
            note "$(node_name "$dir") already running (pid $pid)"
            running_port="$(sed -n 's|^listeners=[A-Z_]*://127.0.0.1:\([0-9]*\),.*|\1|p' "$dir/server.properties")"
            [[ "$running_port" == "$(broker_port "$node")" ]] ||
                die "$(node_name "$dir") runs on port ${running_port:-?}, not $(broker_port "$node") as KAFKA_PORTS/KAFKA_BROKERS say: 'kafka.sh stop' it first, or use its ports"
            pids+=("$pid")
        else
            require_port_free "$(broker_port "$node")" "the broker listener of Kafka node $node"
            require_port_free "$(($(broker_port "$node") + 1))" "the KRaft controller listener of Kafka node $node"
            to_start+=("$node")
        fi
    done

    if ((${#to_start[@]} > 0)); then
        for node in "${to_start[@]}"; do
            dir="$(node_dir "$node")"
            mkdir -p "$dir"
            # Keep the previous run's log for post-mortems, start the new one empty.
            if [[ -f "$dir/kafka.log" ]]; then mv -f "$dir/kafka.log" "$dir/kafka.log.1"; fi
            render_config "$node"
        done
        format_storage "${to_start[@]}"
        for node in "${to_start[@]}"; do
            pid="$(launch_node "$node")"
            pids+=("$pid")
            started+=("$node")
        done
    fi

    if ! wait_ready "${pids[@]}"; then
        if ((${#started[@]} > 0)); then
            show_log_tails "${started[@]}"
            # Leave nothing half-started behind: stop what this call started.
            for node in "${started[@]}"; do
                dir="$(node_dir "$node")"
                pid="$(node_pid "$dir")"
                if [[ -n "$pid" ]]; then stop_pid "$pid" "$(node_name "$dir")" "$STOP_TIMEOUT"; fi
                rm -f "$dir/kafka.pid"
            done
            die "Kafka did not become ready within ${START_TIMEOUT}s (logs: kafka.log of each node under $KAFKA_HOME_DIR)"
        fi
        die "the running Kafka does not answer; try 'kafka.sh stop' then 'start'"
    fi
}

cmd_stop() {
    local dir pid stopping=0
    # All at once: a node of a cluster that stops alone hands its partitions
    # over first, and the last ones would wait for a quorum already gone.
    while IFS= read -r dir; do
        pid="$(node_pid "$dir")"
        [[ -n "$pid" ]] || continue
        stopping=$((stopping + 1))
        (stop_pid "$pid" "$(node_name "$dir")" "$STOP_TIMEOUT" && rm -f "$dir/kafka.pid") &
    done < <(
        all_node_dirs
        # The default instances are both stopped whatever KAFKA_SECURED says, so
        # `make down` leaves nothing running.
        if [[ -n "$OTHER_DEFAULT_HOME" ]]; then all_node_dirs "$OTHER_DEFAULT_HOME"; fi
    )
    wait
    if ((stopping == 0)); then note "not running"; else note "stopped"; fi
}

cmd_status() {
    local node dir pid rc=0 name
    load_ports
    for ((node = 1; node <= BROKERS; node++)); do
        dir="$(node_dir "$node")"
        name="$(node_name "$dir")"
        pid="$(node_pid "$dir")"
        if [[ -n "$pid" ]]; then
            echo "$name: running (pid $pid) on 127.0.0.1:$(broker_port "$node"), data in $dir/data, log $dir/kafka.log"
        else
            echo "$name: not running"
            rc=3
        fi
    done
    return "$rc"
}

cmd_kill() {
    local node="$1" dir pid
    require_node_arg "$node"
    dir="$(node_dir "$node")"
    pid="$(node_pid "$dir")"
    if [[ -z "$pid" ]]; then
        note "node $node is not running"
        return 0
    fi
    kill -KILL "$pid" 2>/dev/null || true
    for _ in {1..100}; do
        pid_alive "$pid" || break
        sleep 0.05
    done
    if pid_alive "$pid"; then die "node $node (pid $pid) is still alive after SIGKILL"; fi
    rm -f "$dir/kafka.pid"
    note "killed node $node (pid $pid)"
}

cmd_pid() {
    local node="$1" pid
    require_node_arg "$node"
    pid="$(node_pid "$(node_dir "$node")")"
    [[ -n "$pid" ]] || return 3
    echo "$pid"
}

case "${1:-}" in
fetch) cmd_fetch ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
bootstrap)
    load_ports
    bootstrap_string
    ;;
replication-factor) echo "$REPLICATION_FACTOR" ;;
kill) cmd_kill "${2:-}" ;;
pid) cmd_pid "${2:-}" ;;
*)
    echo "usage: $0 fetch|start|stop|status|bootstrap|replication-factor|kill NODE|pid NODE" >&2
    exit 2
    ;;
esac
