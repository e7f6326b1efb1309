# shellcheck shell=bash
# Helpers for scripts/services: local MariaDB, Redis and a single-node KRaft Kafka broker.
# Sourced (not executed). Expects ROOT (the repo root) to be set by the caller.
#
# Everything this file creates lives in $ROOT/.services (markers, Redis files, lock) and
# $ROOT/.kafka (jars, config, data, logs, pid). A service counts as "ours" only when a
# marker/pid file written by `up` names a live process of the expected kind; `down` never
# touches anything else.
#
# The stores share one shape, written once in store_up, store_down and store_status; each store
# supplies only what differs, as functions named <store>_<hook>:
#   answers [PORT]  it answers on PORT (default: its configured port)
#   ours_pid        the pid of the process `up` started, '' unless that process is alive
#   ours_port       the port that process was started on
#   await PID       our process runs: 0 once it answers on the configured port (may wait)
#   start           nothing answers and nothing of ours runs: install what is missing, start it
#   stop PID        stop our process
#   forget          remove the pid and marker files `up` wrote
#   external        optional: extra work when `up` uses a server it did not start

: "${ROOT:?ROOT must be set before sourcing scripts/lib/services.sh}"

HOST=127.0.0.1
MYSQL_PORT="${MYSQL_PORT:-3306}"
REDIS_PORT="${REDIS_PORT:-6379}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${KAFKA_HEAP:-512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
# Optional: run our own MariaDB on a private data directory instead of the system one.
MYSQL_DATADIR="${MYSQL_DATADIR:-}"

# In `up` order; `down` walks it backwards.
STORES=(mariadb redis kafka)
declare -A STORE_PORT_VAR=([mariadb]=MYSQL_PORT [redis]=REDIS_PORT [kafka]=KAFKA_PORT)
declare -A STORE_NOUN=([mariadb]=server [redis]=server [kafka]=broker)
# Our Kafka broker owns .kafka/ (its config and data), so there is one per checkout whatever its
# ports: `up` refuses to start or pick another beside one started with other ports, and `status`
# reports it where it runs (as down for the configured port). Ours of MariaDB and Redis count
# only on the configured port; elsewhere they are left to `down`.
declare -A STORE_ONE_PER_CHECKOUT=([kafka]=1)

SVC_DIR="$ROOT/.services"
KAFKA_DIR="$ROOT/.kafka"
KAFKA_POM="$ROOT/infra/kafka/pom.xml"
KAFKA_TEMPLATE="$ROOT/infra/kafka/broker.properties"
KAFKA_RENDER="$ROOT/infra/kafka/render-broker-config"
# The version lives in the pom that resolves the jars; docker-compose.yml's image tag is
# checked against it by test/unit/infra_config.test.ts.
KAFKA_VERSION=$(sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' "$KAFKA_POM" 2>/dev/null || true)
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_CONF="$KAFKA_DIR/config/server.properties"
KAFKA_LOG4J="$KAFKA_DIR/config/log4j.properties"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_PORTS_FILE="$KAFKA_DIR/kafka.ports"
MARIADBD=/usr/sbin/mariadbd
MARIADB_PID="$SVC_DIR/mariadb.pid"
MARIADB_MARK="$SVC_DIR/mariadb.ours"
REDIS_PID="$SVC_DIR/redis.pid"
REDIS_MARK="$SVC_DIR/redis.ours"

log() { printf '%s\n' "$*"; }
err() { printf '%s\n' "$*" >&2; }
die() { err "error: $*"; exit 1; }

validate_settings() {
  local v
  for v in MYSQL_PORT REDIS_PORT KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_START_TIMEOUT; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a number (got '${!v}')"
  done
  [[ "$KAFKA_HEAP" =~ ^[0-9]+[kKmMgG]?$ ]] || die "KAFKA_HEAP must look like 512m or 1g (got '$KAFKA_HEAP')"
  [[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
  [[ -n "$KAFKA_VERSION" ]] || die "no <kafka.version> in $KAFKA_POM"
}

# --- generic helpers -----------------------------------------------------------------

SUDO=""
if [[ $EUID -ne 0 ]] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

APT_UPDATED=0
apt_install() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt: apt-get update"
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt: installing $*"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# need_cmd COMMAND PACKAGE: install PACKAGE when COMMAND is not on PATH.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 || apt_install "$2"
  command -v "$1" >/dev/null 2>&1 || die "'$1' is still missing after installing $2"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
}

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

read_pid() { if [[ -s "$1" ]]; then tr -dc '0-9' <"$1"; fi; }

# proc_cmdline PID: the process's argv joined by spaces ('' if gone).
proc_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# marker_get FILE KEY: value of KEY=... in a marker file.
marker_get() { if [[ -f "$1" ]]; then sed -n "s/^$2=//p" "$1" | head -n1; fi; }

# wait_gone PID SECONDS: 0 once the process has exited, 1 on timeout.
wait_gone() {
  local pid=$1 i
  for ((i = 0; i < $2 * 10; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  ! pid_alive "$pid"
}

# stop_pid NAME PID SECONDS: SIGTERM, wait, then SIGKILL.
stop_pid() {
  local name=$1 pid=$2 secs=$3
  pid_alive "$pid" || return 0
  log "$name: stopping pid $pid (SIGTERM, up to ${secs}s)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$secs"; then
    err "$name: pid $pid still alive after ${secs}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "$name: pid $pid survived SIGKILL"
  fi
}

take_lock() {
  mkdir -p "$SVC_DIR"
  exec 9>"$SVC_DIR/.lock"
  flock -w 300 9 || die "another scripts/services run holds $SVC_DIR/.lock"
}

# --- the shape every store shares -----------------------------------------------------

# store_port STORE: the port STORE is configured to answer on.
store_port() { printf '%s\n' "${!STORE_PORT_VAR[$1]}"; }

store_up() {
  local s=$1 noun=${STORE_NOUN[$1]} port pid ours_port=""
  port=$(store_port "$s")
  pid=$("${s}_ours_pid")
  [[ -z "$pid" ]] || ours_port=$("${s}_ours_port")
  if [[ -n "$pid" ]] && [[ "$ours_port" == "$port" || -n "${STORE_ONE_PER_CHECKOUT[$s]:-}" ]]; then
    "${s}_await" "$pid" ||
      die "$s: our $noun (pid $pid, port $ours_port) runs but $HOST:$port does not answer; run '$0 down' first"
    log "$s: ours, already running on $HOST:$port (pid $pid)"
  elif "${s}_answers" "$port"; then
    log "$s: using the $noun on $HOST:$port (not started by this script)"
    if declare -F "${s}_external" >/dev/null; then "${s}_external"; fi
  elif [[ -n "$pid" ]]; then
    die "$s: our $noun (pid $pid, port $ours_port) runs but $HOST:$port does not answer; run '$0 down' first"
  else
    "${s}_start"
  fi
}

store_down() {
  local s=$1 pid
  pid=$("${s}_ours_pid")
  if [[ -z "$pid" ]]; then
    "${s}_forget"
    log "$s: not started by this script, left alone"
    return 0
  fi
  "${s}_stop" "$pid"
  "${s}_forget"
  log "$s: stopped"
}

# store_status STORE: one line; 0 when STORE answers on its configured port.
store_status() {
  local s=$1 want port pid ours_port ours="external" state="down"
  want=$(store_port "$s")
  port=$want
  pid=$("${s}_ours_pid")
  if [[ -n "$pid" ]]; then
    ours_port=$("${s}_ours_port")
    if [[ -n "${STORE_ONE_PER_CHECKOUT[$s]:-}" ]]; then port=${ours_port:-$want}; fi
    if [[ "$ours_port" == "$port" ]]; then ours="ours (pid $pid)"; fi
  fi
  "${s}_answers" "$port" && state="up"
  if [[ $state == down && $ours == external ]]; then ours="-"; fi
  printf '%-8s %-5s %-16s %s\n' "$s" "$state" "$HOST:$port" "$ours"
  [[ $state == up && $port == "$want" ]]
}

services_up() {
  local s
  for s in "${STORES[@]}"; do store_up "$s"; done
}

services_down() {
  local i
  for ((i = ${#STORES[@]} - 1; i >= 0; i--)); do store_down "${STORES[i]}"; done
}

# services_status: 0 when every store answers, 3 otherwise (every store is still reported).
services_status() {
  local s rc=0
  for s in "${STORES[@]}"; do store_status "$s" || rc=3; done
  return "$rc"
}

# --- MariaDB -------------------------------------------------------------------------

# mysql_tcp_ok [PORT]: root logs in over TCP with an empty password.
mysql_tcp_ok() {
  command -v mysql >/dev/null 2>&1 &&
    mysql --connect-timeout=3 -h"$HOST" -P"${1:-$MYSQL_PORT}" -uroot -e 'select 1' >/dev/null 2>&1
}

mariadb_socket() {
  if [[ -n "$MYSQL_DATADIR" ]]; then
    printf '%s\n' "$MYSQL_DATADIR/mariadbd.sock"
    return
  fi
  local s
  s=$(my_print_defaults --mysqld 2>/dev/null | sed -n 's/^--socket=//p' | tail -n1 || true)
  printf '%s\n' "${s:-/run/mysqld/mysqld.sock}"
}

mysql_socket_ok() {
  mysql --connect-timeout=3 --socket="$(mariadb_socket)" -uroot -e 'select 1' >/dev/null 2>&1
}

mariadb_answers() { mysql_tcp_ok "$@"; }
mariadb_await() { mysql_tcp_ok; }
mariadb_ours_port() { marker_get "$MARIADB_MARK" port; }

# The pid of our MariaDB, or '' when the marker does not name a live mariadbd.
mariadb_ours_pid() {
  local pid
  pid=$(read_pid "$MARIADB_PID")
  if [[ -f "$MARIADB_MARK" ]] && pid_alive "$pid" &&
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == mariadbd ]]; then
    printf '%s\n' "$pid"
  fi
}

# Fresh Debian MariaDB lets root in only via unix_socket; open TCP root with an empty password.
mariadb_fix_root_auth() {
  local sock port
  sock=$(mariadb_socket)
  # Never reconfigure a different server that happens to own the socket.
  port=$(mysql --socket="$sock" -uroot -N -B -e 'select @@port' 2>/dev/null || true)
  [[ "$port" == "$MYSQL_PORT" ]] ||
    die "mariadb: the server on socket $sock listens on port '${port:-?}', not $MYSQL_PORT; not touching it"
  log "mariadb: allowing root over TCP with an empty password (via $sock)"
  mysql --socket="$sock" -uroot -e \
    "ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;"
  if ! mysql_tcp_ok; then
    log "mariadb: creating root@127.0.0.1 (the server does not map 127.0.0.1 to localhost)"
    mysql --socket="$sock" -uroot -e \
      "CREATE USER IF NOT EXISTS root@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('');
       GRANT ALL PRIVILEGES ON *.* TO root@'127.0.0.1' WITH GRANT OPTION;"
  fi
  mysql_tcp_ok || die "mariadb: root still cannot log in over $HOST:$MYSQL_PORT"
}

mariadb_start() {
  # A server may be up but refusing TCP root (fresh package install): fix it over the socket.
  if command -v mysql >/dev/null 2>&1 && mysql_socket_ok; then
    if port_open "$MYSQL_PORT"; then
      mariadb_fix_root_auth
      log "mariadb: using the server on $HOST:$MYSQL_PORT (not started by this script)"
      return 0
    fi
  fi
  if port_open "$MYSQL_PORT"; then
    die "mariadb: something listens on $HOST:$MYSQL_PORT but root cannot log in with an empty password"
  fi

  if [[ ! -x "$MARIADBD" ]]; then apt_install mariadb-server; fi
  need_cmd mysql mariadb-client
  [[ -x "$MARIADBD" ]] || die "mariadb: $MARIADBD missing after installing mariadb-server"

  local -a args=(--user=mysql)
  if [[ "$MYSQL_PORT" != 3306 ]]; then args+=(--port="$MYSQL_PORT" --bind-address="$HOST"); fi
  if [[ -n "$MYSQL_DATADIR" ]]; then
    args+=(--datadir="$MYSQL_DATADIR" --socket="$MYSQL_DATADIR/mariadbd.sock"
      --pid-file="$MYSQL_DATADIR/mariadbd.pid" --log-error="$MYSQL_DATADIR/mariadbd.err")
    if [[ ! -d "$MYSQL_DATADIR/mysql" ]]; then
      log "mariadb: initialising data directory $MYSQL_DATADIR"
      mkdir -p "$MYSQL_DATADIR"
      chown mysql:mysql "$MYSQL_DATADIR"
      mariadb-install-db --user=mysql --skip-test-db --datadir="$MYSQL_DATADIR" >"$SVC_DIR/mariadb-install-db.log" 2>&1 ||
        { tail -n 40 "$SVC_DIR/mariadb-install-db.log" >&2; die "mariadb: mariadb-install-db failed"; }
    fi
  else
    local datadir
    datadir=$(my_print_defaults --mysqld 2>/dev/null | sed -n 's/^--datadir=//p' | tail -n1 || true)
    datadir=${datadir:-/var/lib/mysql}
    if [[ ! -d "$datadir/mysql" ]]; then
      log "mariadb: initialising data directory $datadir"
      mariadb-install-db --user=mysql --skip-test-db --datadir="$datadir" >"$SVC_DIR/mariadb-install-db.log" 2>&1 ||
        { tail -n 40 "$SVC_DIR/mariadb-install-db.log" >&2; die "mariadb: mariadb-install-db failed"; }
    fi
  fi
  # The socket/pid directory is normally created by the init script, which we bypass.
  local sockdir
  sockdir=$(dirname "$(mariadb_socket)")
  [[ -d "$sockdir" ]] || install -d -o mysql -g mysql "$sockdir"

  log "mariadb: starting $MARIADBD on $HOST:$MYSQL_PORT"
  rm -f "$MARIADB_PID"
  start-stop-daemon --start --oknodo --background --make-pidfile --pidfile "$MARIADB_PID" \
    --exec "$MARIADBD" -- "${args[@]}" 9>&-
  local pid
  pid=$(read_pid "$MARIADB_PID")
  printf 'pid=%s\nport=%s\ndatadir=%s\nstarted=%s\n' "$pid" "$MYSQL_PORT" "${MYSQL_DATADIR:-system}" \
    "$(date -Is)" >"$MARIADB_MARK"

  # Ready = our process is alive and its TCP port accepts connections (socket and port
  # open together once InnoDB is up). Checking the socket alone could hit another server.
  local i
  for ((i = 0; i < 600; i++)); do
    pid_alive "$pid" || break
    port_open "$MYSQL_PORT" && mysql_socket_ok && break
    sleep 0.1
  done
  if ! pid_alive "$pid"; then
    rm -f "$MARIADB_MARK" "$MARIADB_PID"
    die "mariadb: mariadbd exited during startup (see ${MYSQL_DATADIR:+$MYSQL_DATADIR/mariadbd.err}${MYSQL_DATADIR:-its log-error file, e.g. /var/log/mysql/error.log})"
  fi
  if ! { port_open "$MYSQL_PORT" && mysql_socket_ok; }; then
    die "mariadb: server (pid $pid) did not answer on $HOST:$MYSQL_PORT and $(mariadb_socket) within 60s"
  fi
  mysql_tcp_ok || mariadb_fix_root_auth
  log "mariadb: started (ours) on $HOST:$MYSQL_PORT (pid $pid)"
}

mariadb_stop() {
  log "mariadb: stopping our server (pid $1)"
  start-stop-daemon --stop --quiet --pidfile "$MARIADB_PID" --exec "$MARIADBD" --retry TERM/60/KILL/5 ||
    [[ $? -eq 1 ]] || die "mariadb: could not stop pid $1"
}

mariadb_forget() { rm -f "$MARIADB_MARK" "$MARIADB_PID"; }

# --- Redis ---------------------------------------------------------------------------

# redis_ping_ok [PORT]: PING answers PONG.
redis_ping_ok() {
  command -v redis-cli >/dev/null 2>&1 &&
    [[ "$(timeout 3 redis-cli -h "$HOST" -p "${1:-$REDIS_PORT}" ping 2>/dev/null)" == PONG ]]
}

redis_answers() { redis_ping_ok "$@"; }
redis_await() { redis_ping_ok; }
redis_ours_port() { marker_get "$REDIS_MARK" port; }

redis_ours_pid() {
  local pid
  pid=$(read_pid "$REDIS_PID")
  if [[ -f "$REDIS_MARK" ]] && pid_alive "$pid" && [[ "$(proc_cmdline "$pid")" == *redis-server* ]]; then
    printf '%s\n' "$pid"
  fi
}

redis_start() {
  port_open "$REDIS_PORT" && die "redis: something listens on $HOST:$REDIS_PORT but does not answer PING"
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  need_cmd redis-cli redis-tools

  log "redis: starting redis-server on $HOST:$REDIS_PORT"
  rm -f "$REDIS_PID"
  redis-server --daemonize yes --bind "$HOST" --port "$REDIS_PORT" --save "" --appendonly no \
    --pidfile "$REDIS_PID" --logfile "$SVC_DIR/redis.log" --dir "$SVC_DIR" >/dev/null 9>&-
  local i pid
  for ((i = 0; i < 100; i++)); do
    redis_ping_ok && break
    sleep 0.1
  done
  redis_ping_ok || { tail -n 40 "$SVC_DIR/redis.log" >&2 || true; die "redis: no PONG from $HOST:$REDIS_PORT within 10s"; }
  for ((i = 0; i < 50; i++)); do
    [[ -s "$REDIS_PID" ]] && break
    sleep 0.1
  done
  pid=$(read_pid "$REDIS_PID")
  printf 'pid=%s\nport=%s\nstarted=%s\n' "$pid" "$REDIS_PORT" "$(date -Is)" >"$REDIS_MARK"
  log "redis: started (ours) on $HOST:$REDIS_PORT (pid $pid)"
}

redis_stop() { stop_pid redis "$1" 30; }
redis_forget() { rm -f "$REDIS_MARK" "$REDIS_PID"; }

# --- Kafka ---------------------------------------------------------------------------

kafka_answers() { port_open "${1:-$KAFKA_PORT}"; }

# The pid of our broker, or '' unless kafka.pid names a live `java ... kafka.Kafka <our config>`.
kafka_ours_pid() {
  local pid cmd
  pid=$(read_pid "$KAFKA_PID")
  pid_alive "$pid" || return 0
  cmd=$(proc_cmdline "$pid")
  if [[ "$cmd" == *java* && "$cmd" == *" kafka.Kafka $KAFKA_CONF"* ]]; then printf '%s\n' "$pid"; fi
}

# The client port our broker was started with; the configured one when kafka.ports says nothing.
kafka_ours_port() {
  local port
  port=$(cut -d' ' -f1 "$KAFKA_PORTS_FILE" 2>/dev/null || true)
  printf '%s\n' "${port:-$KAFKA_PORT}"
}

kafka_await() {
  local pid=$1 ports t0=$SECONDS
  ports=$(cat "$KAFKA_PORTS_FILE" 2>/dev/null || true)
  if [[ -n "$ports" && "$ports" != "$KAFKA_PORT $KAFKA_CONTROLLER_PORT" ]]; then
    die "kafka: our broker (pid $pid) already runs with ports '$ports', not $KAFKA_PORT/$KAFKA_CONTROLLER_PORT; run '$0 down' first"
  fi
  # Still starting (e.g. an earlier `up` was interrupted): wait for the listener.
  while ! port_open "$KAFKA_PORT"; do
    pid_alive "$pid" || die "Kafka broker (pid $pid) exited while starting (see $KAFKA_LOGS)"
    ((SECONDS - t0 < KAFKA_START_TIMEOUT)) ||
      die "Kafka broker (pid $pid) runs but $HOST:$KAFKA_PORT did not open within ${KAFKA_START_TIMEOUT}s"
    sleep 0.5
  done
}

# The jars are needed even with an external broker: tests start private brokers from them.
kafka_external() { kafka_ensure_runtime; }

# Heap flags: -Xmx$KAFKA_HEAP and -Xms256m (or the whole heap when it is smaller).
kafka_heap_opts() {
  local n=${KAFKA_HEAP%[kKmMgG]} unit=${KAFKA_HEAP##*[0-9]} mib
  case "$unit" in
    k | K) mib=$((n / 1024)) ;;
    m | M) mib=$n ;;
    g | G) mib=$((n * 1024)) ;;
    *) mib=$((n / 1048576)) ;;
  esac
  if ((mib < 256)); then printf '%s\n' "-Xmx$KAFKA_HEAP -Xms$KAFKA_HEAP"; else printf '%s\n' "-Xmx$KAFKA_HEAP -Xms256m"; fi
}

kafka_ensure_runtime() {
  need_cmd java default-jre-headless
  if [[ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]]; then return 0; fi
  need_cmd mvn maven
  log "kafka: resolving Kafka $KAFKA_VERSION jars with Maven into .kafka/libs"
  local tmp="$KAFKA_DIR/libs.partial"
  rm -rf "$tmp"
  mkdir -p "$KAFKA_DIR"
  mvn -B -q -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime >"$KAFKA_DIR/mvn.log" 2>&1 ||
    { tail -n 40 "$KAFKA_DIR/mvn.log" >&2; die "kafka: 'mvn dependency:copy-dependencies' failed for infra/kafka/pom.xml"; }
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka: Maven did not produce kafka_2.13-$KAFKA_VERSION.jar"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
}

# kafka_broker_properties: the shared broker's server.properties, i.e. infra/kafka/broker.properties
# with this broker's listeners and data directory filled in.
kafka_broker_properties() {
  printf '# Generated by scripts/services from infra/kafka/broker.properties on every start; edits are overwritten.\n'
  BROKER_CONTROLLER="$HOST:$KAFKA_CONTROLLER_PORT" \
    BROKER_LISTENERS="PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT" \
    BROKER_ADVERTISED_LISTENERS="PLAINTEXT://$HOST:$KAFKA_PORT" \
    BROKER_LOG_DIRS="$KAFKA_DATA" \
    bash "$KAFKA_RENDER" "$KAFKA_TEMPLATE"
}

kafka_write_config() {
  mkdir -p "$KAFKA_DIR/config" "$KAFKA_DATA" "$KAFKA_LOGS"
  kafka_broker_properties >"$KAFKA_CONF.tmp" || die "kafka: rendering $KAFKA_TEMPLATE failed"
  mv "$KAFKA_CONF.tmp" "$KAFKA_CONF"

  cat >"$KAFKA_LOG4J.tmp" <<EOF
# Generated by scripts/services. Everything goes to .kafka/logs/server.log.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$KAFKA_LOGS/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=3
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n

# "Kafka Server started" is logged at INFO by this logger; scripts/services waits for it.
log4j.logger.kafka.server.KafkaRaftServer=INFO
# Noisy at INFO: per-partition/segment chatter, request logs, config dumps, client internals.
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel\$=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
log4j.logger.kafka.cluster.Partition=WARN
log4j.logger.kafka.server.ReplicaFetcherManager=WARN
log4j.logger.kafka.server.ReplicaAlterLogDirsManager=WARN
log4j.logger.kafka.server.metadata=WARN
log4j.logger.org.apache.kafka.metadata=WARN
log4j.logger.org.apache.kafka.image=WARN
log4j.logger.org.apache.kafka.controller=WARN
log4j.logger.org.apache.kafka.raft=WARN
log4j.logger.kafka.raft=WARN
log4j.logger.org.apache.kafka.common.config=WARN
log4j.logger.kafka.server.KafkaConfig=WARN
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.org.apache.kafka.common.utils.AppInfoParser=WARN
log4j.logger.org.apache.kafka.common.metrics=WARN
log4j.logger.kafka.authorizer.logger=WARN
EOF
  mv "$KAFKA_LOG4J.tmp" "$KAFKA_LOG4J"
}

kafka_format_storage() {
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
  local uuid
  uuid=$(java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 | tr -d '[:space:]')
  [[ "$uuid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka: 'StorageTool random-uuid' gave no cluster id (got '$uuid')"
  log "kafka: formatting storage $KAFKA_DATA (cluster id $uuid)"
  java -Dlog4j.configuration="file:$KAFKA_LOG4J" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
    -t "$uuid" -c "$KAFKA_CONF" >"$KAFKA_LOGS/format.log" 2>&1 ||
    { cat "$KAFKA_LOGS/format.log" >&2; die "kafka: formatting the KRaft storage failed"; }
  printf '%s\n' "$uuid" >"$KAFKA_DIR/cluster.id"
}

# kafka_dump_logs OFFSET: last 40 lines of server.log written since byte OFFSET, and stdout.log.
kafka_dump_logs() {
  err "---- last 40 lines of $KAFKA_LOGS/server.log (this start) ----"
  tail -c +"$(($1 + 1))" "$KAFKA_LOGS/server.log" 2>/dev/null | tail -n 40 >&2 || true
  if [[ -s "$KAFKA_LOGS/stdout.log" ]]; then
    err "---- last 40 lines of $KAFKA_LOGS/stdout.log ----"
    tail -n 40 "$KAFKA_LOGS/stdout.log" >&2 || true
  fi
}

kafka_start() {
  rm -f "$KAFKA_PID"
  port_open "$KAFKA_CONTROLLER_PORT" &&
    die "kafka: controller port $HOST:$KAFKA_CONTROLLER_PORT is taken by another process; set KAFKA_CONTROLLER_PORT"

  kafka_ensure_runtime
  kafka_write_config
  kafka_format_storage

  local log_file="$KAFKA_LOGS/server.log" offset
  printf '==== scripts/services: starting Kafka %s on %s:%s at %s ====\n' \
    "$KAFKA_VERSION" "$HOST" "$KAFKA_PORT" "$(date -Is)" >>"$log_file"
  offset=$(stat -c %s "$log_file")

  log "kafka: starting Kafka $KAFKA_VERSION (KRaft) on $HOST:$KAFKA_PORT, controller $HOST:$KAFKA_CONTROLLER_PORT, heap $KAFKA_HEAP"
  local -a jvm
  read -r -a jvm <<<"$(kafka_heap_opts)"
  jvm+=(-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -XX:MaxMetaspaceSize=128m -Djava.awt.headless=true
    -Dkafka.logs.dir="$KAFKA_LOGS" -Dlog4j.configuration="file:$KAFKA_LOG4J")
  # Non-interactive bash keeps background jobs in its own process group, so setsid does
  # not fork here and $! is the JVM's pid. fd 9 (our flock) must not leak into the broker.
  nohup setsid java "${jvm[@]}" -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF" \
    >"$KAFKA_LOGS/stdout.log" 2>&1 </dev/null 9>&- &
  local pid=$!
  disown "$pid" 2>/dev/null || true
  printf '%s\n' "$pid" >"$KAFKA_PID"
  printf '%s %s\n' "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" >"$KAFKA_PORTS_FILE"

  local start=$SECONDS
  while :; do
    if tail -c +"$((offset + 1))" "$log_file" 2>/dev/null | grep -q 'Kafka Server started'; then break; fi
    if ! pid_alive "$pid"; then
      rm -f "$KAFKA_PID"
      kafka_dump_logs "$offset"
      die "Kafka broker exited during startup (see $KAFKA_LOGS)"
    fi
    if ((SECONDS - start >= KAFKA_START_TIMEOUT)); then
      kafka_dump_logs "$offset"
      stop_pid kafka "$pid" 30
      rm -f "$KAFKA_PID"
      die "Kafka broker did not log 'Kafka Server started' within ${KAFKA_START_TIMEOUT}s"
    fi
    sleep 0.5
  done
  port_open "$KAFKA_PORT" || { kafka_dump_logs "$offset"; die "Kafka reports started but $HOST:$KAFKA_PORT does not accept connections"; }
  log "kafka: started (ours) on $HOST:$KAFKA_PORT (pid $pid) in $((SECONDS - start))s"
}

kafka_stop() { stop_pid kafka "$1" 30; }
kafka_forget() { rm -f "$KAFKA_PID"; }
