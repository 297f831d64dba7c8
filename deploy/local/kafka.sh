#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft) for development and tests,
# without Docker: the broker's jars come from Maven Central through
# deploy/kafka/pom.xml, and everything it writes lives under .local/kafka/.
#
#   deploy/local/kafka.sh fetch    copy the jars into .local/kafka/libs (skipped when up to date)
#   deploy/local/kafka.sh start    fetch, format storage once, start, wait until an admin client sees it
#   deploy/local/kafka.sh stop     SIGTERM, wait, SIGKILL after a bound
#   deploy/local/kafka.sh status   exit 0 when running (3 when not)
#
# Every subcommand is idempotent: a second start on a running broker is a
# no-op, and a pid file left by a killed broker does not break the next start.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POM="$ROOT/deploy/kafka/pom.xml"
TEMPLATE="$ROOT/deploy/kafka/server.properties.in"
LOG4J_CONFIG="$ROOT/deploy/kafka/log4j2.properties"

KAFKA_HOME_DIR="$LOCAL_DIR/kafka"
LIBS="$KAFKA_HOME_DIR/libs"
LIBS_STAMP="$KAFKA_HOME_DIR/libs.sha256" # sha256 of the pom the jars came from
DATA="$KAFKA_HOME_DIR/data"
CONF="$KAFKA_HOME_DIR/server.properties"
CLUSTER_ID_FILE="$KAFKA_HOME_DIR/cluster.id"
PID_FILE="$KAFKA_HOME_DIR/kafka.pid"
LOG_FILE="$KAFKA_HOME_DIR/kafka.log"

BROKER_PORT=9092
CONTROLLER_PORT=9093
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}" # seconds until an admin client must see the broker
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"   # seconds of clean shutdown before SIGKILL

# Only our broker has this on its command line (the absolute config path).
MARKER="kafka.Kafka $CONF"

require_java() {
    command -v java >/dev/null 2>&1 ||
        die "java not found: Kafka needs a JRE 17+ (apt-get install -y openjdk-17-jre-headless)"
}

pom_sha() {
    sha256sum "$POM" | cut -d' ' -f1
}

# The pid of our running broker: from the pid file, or, when that is missing or
# stale, from the process listening on our ports if it is our broker (a pid
# file deleted by hand must not make us start a second one or miss a stop).
running_pid() {
    local pid p
    pid="$(live_pid_from_file "$PID_FILE" "$MARKER")"
    if [[ -z "$pid" ]]; then
        for p in $(port_pids "$BROKER_PORT") $(port_pids "$CONTROLLER_PORT"); do
            if [[ "$p" != "?" && "$(pid_cmdline "$p")" == *"$MARKER"* ]]; then
                pid="$p"
                echo "$pid" >"$PID_FILE"
                note "found our broker running without its pid file (pid $pid)"
                break
            fi
        done
    fi
    echo "$pid"
}

cmd_fetch() {
    local want
    want="$(pom_sha)"
    if [[ -f "$LIBS_STAMP" && "$(cat "$LIBS_STAMP")" == "$want" ]] &&
        compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null; then
        return 0 # the jars of this very pom are there
    fi
    if [[ -n "$(running_pid)" ]]; then
        # Swapping jars under a running JVM would break its lazy class loading.
        note "the jars are missing or not those of deploy/kafka/pom.xml, but the broker is running: 'kafka.sh stop' then 'start' to refresh them"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found: the broker's jars come from Maven Central (apt-get install -y maven)"
    note "fetching the Kafka jars from Maven Central (deploy/kafka/pom.xml)"
    mkdir -p "$KAFKA_HOME_DIR"
    # Copy into a scratch folder and swap it in at the end, so an interrupted
    # fetch never leaves a half-filled libs/ that looks complete.
    # Maven's output goes to a file: even with -q it prints ANSI resets, and
    # it is only worth reading when it fails.
    rm -rf "$LIBS.tmp"
    if ! mvn -q -B -f "$POM" \
        org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" >"$KAFKA_HOME_DIR/fetch.log" 2>&1; then
        cat "$KAFKA_HOME_DIR/fetch.log" >&2
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

render_config() {
    mkdir -p "$DATA"
    sed -e "s|@BROKER_PORT@|$BROKER_PORT|g" \
        -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
        -e "s|@LOG_DIRS@|$(sed_escape "$DATA")|g" \
        "$TEMPLATE" >"$CONF.tmp"
    mv "$CONF.tmp" "$CONF"
}

# Formats the storage directory once. The cluster id is kept in a file so that
# a re-format (after deleting data/) reuses it, and meta.properties tells
# whether the directory is formatted already.
format_storage() {
    [[ -f "$DATA/meta.properties" ]] && return 0
    local cluster_id
    if [[ -s "$CLUSTER_ID_FILE" ]]; then
        cluster_id="$(cat "$CLUSTER_ID_FILE")"
    else
        cluster_id="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
        [[ -n "$cluster_id" ]] || die "kafka.tools.StorageTool random-uuid printed nothing"
        echo "$cluster_id" >"$CLUSTER_ID_FILE"
    fi
    note "formatting $DATA (cluster id $cluster_id)"
    java -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "$LIBS/*" \
        kafka.tools.StorageTool format -t "$cluster_id" -c "$CONF" >>"$LOG_FILE" 2>&1 ||
        { tail -n 20 "$LOG_FILE" >&2; die "formatting the storage failed (log above, $LOG_FILE)"; }
}

wait_ready() {
    local pid="$1"
    if ! "$VENV_PYTHON" "$ROOT/deploy/local/wait_kafka.py" \
        --bootstrap "127.0.0.1:$BROKER_PORT" --timeout "$START_TIMEOUT" --pid "$pid"; then
        echo "---- last lines of $LOG_FILE ----" >&2
        tail -n 30 "$LOG_FILE" >&2
        echo "----" >&2
        return 1
    fi
}

cmd_start() {
    require_java
    require_venv # the readiness check uses the project's aiokafka
    [[ -f "$TEMPLATE" ]] || die "missing $TEMPLATE"
    cmd_fetch

    local pid
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        note "already running (pid $pid)"
        wait_ready "$pid" || die "the running broker (pid $pid) does not answer; try 'kafka.sh stop' then 'start'"
        return 0
    fi

    require_port_free "$BROKER_PORT" "the Kafka broker listener"
    require_port_free "$CONTROLLER_PORT" "the KRaft controller listener"

    # Keep the previous run's log for post-mortems, start the new one empty.
    if [[ -f "$LOG_FILE" ]]; then mv -f "$LOG_FILE" "$LOG_FILE.1"; fi
    render_config
    format_storage

    note "starting the broker on 127.0.0.1:$BROKER_PORT (log: $LOG_FILE)"
    # setsid: the broker gets its own session, so a Ctrl-C meant for `make run`
    # (or a terminal closing) does not kill the shared infrastructure.
    # The wrapper writes its own pid and then execs java, so the pid file holds
    # the JVM's pid whether or not setsid had to fork.
    rm -f "$PID_FILE"
    # shellcheck disable=SC2016  # expanded by the inner bash
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
        java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J_CONFIG" \
        -cp "$LIBS/*" kafka.Kafka "$CONF" \
        </dev/null >>"$LOG_FILE" 2>&1 &
    for _ in {1..50}; do
        [[ -s "$PID_FILE" ]] && break
        sleep 0.1
    done
    pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
    [[ -n "$pid" ]] || die "the broker did not start (no pid written; see $LOG_FILE)"

    if ! wait_ready "$pid"; then
        stop_pid "$pid" "kafka" "$STOP_TIMEOUT"
        rm -f "$PID_FILE"
        die "the broker did not become ready within ${START_TIMEOUT}s (full log: $LOG_FILE)"
    fi
}

cmd_stop() {
    local pid
    pid="$(running_pid)"
    if [[ -z "$pid" ]]; then
        note "not running"
        return 0
    fi
    stop_pid "$pid" "kafka" "$STOP_TIMEOUT"
    rm -f "$PID_FILE"
    note "stopped"
}

cmd_status() {
    local pid
    pid="$(running_pid)"
    if [[ -z "$pid" ]]; then
        echo "kafka: not running"
        return 3
    fi
    echo "kafka: running (pid $pid) on 127.0.0.1:$BROKER_PORT, data in $DATA, log $LOG_FILE"
}

case "${1:-}" in
fetch) cmd_fetch ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
    echo "usage: $0 fetch|start|stop|status" >&2
    exit 2
    ;;
esac
