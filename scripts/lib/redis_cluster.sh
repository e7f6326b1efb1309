# shellcheck shell=bash
# A local 3-master Redis Cluster for scripts/services (`up --redis-cluster`): Debian's
# redis-server in cluster mode on its own ports, joined by `redis-cli --cluster create`.
# Sourced after scripts/lib/services.sh (uses HOST, SVC_DIR, log/err/die, apt_install, need_cmd,
# pid_alive, read_pid, proc_cmdline, stop_pid).
#
# Ports: REDIS_CLUSTER_PORT (7101) and the next two; each node's cluster bus is its port + 10000.
# State: .services/redis-cluster/<port>/ (pid, log, nodes.conf). No persistence: like the
# shared Redis, a restart loses the data; `down` removes the directory, so the next `up` forms
# a fresh cluster.

REDIS_CLUSTER_PORT="${REDIS_CLUSTER_PORT:-7101}"
REDIS_CLUSTER_SIZE=3
REDIS_CLUSTER_DIR="$SVC_DIR/redis-cluster"

redis_cluster_ports() {
  local i
  for ((i = 0; i < REDIS_CLUSTER_SIZE; i++)); do printf '%s\n' $((REDIS_CLUSTER_PORT + i)); done
}

# REDIS_CLUSTER_NODES for the service and the tests: 127.0.0.1:7101,127.0.0.1:7102,...
redis_cluster_nodes() {
  local port out=""
  for port in $(redis_cluster_ports); do out+="${out:+,}$HOST:$port"; done
  printf '%s\n' "$out"
}

redis_cluster_cli() { timeout 5 redis-cli -h "$HOST" -p "$1" "${@:2}" 2>/dev/null; }

# redis_cluster_ok: every node answers and reports a healthy cluster of all of them, every
# slot assigned.
redis_cluster_ok() {
  local port info
  command -v redis-cli >/dev/null 2>&1 || return 1
  for port in $(redis_cluster_ports); do
    info=$(redis_cluster_cli "$port" cluster info | tr -d '\r') || return 1
    grep -qx 'cluster_state:ok' <<<"$info" || return 1
    grep -qx 'cluster_slots_assigned:16384' <<<"$info" || return 1
    grep -qx "cluster_known_nodes:$REDIS_CLUSTER_SIZE" <<<"$info" || return 1
  done
}

# The pid of our node on PORT, or '' unless its pid file names a live redis-server.
redis_cluster_node_pid() {
  local pid
  pid=$(read_pid "$REDIS_CLUSTER_DIR/$1/redis.pid")
  if pid_alive "$pid" && [[ "$(proc_cmdline "$pid")" == *redis-server* ]]; then printf '%s\n' "$pid"; fi
}

redis_cluster_up() {
  [[ "$REDIS_CLUSTER_PORT" =~ ^[0-9]+$ ]] || die "REDIS_CLUSTER_PORT must be a number (got '$REDIS_CLUSTER_PORT')"
  if redis_cluster_ok; then
    log "redis-cluster: up on $(redis_cluster_nodes)"
    return 0
  fi
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  need_cmd redis-cli redis-tools

  local port dir pid i fresh=0
  for port in $(redis_cluster_ports); do
    dir="$REDIS_CLUSTER_DIR/$port"
    pid=$(redis_cluster_node_pid "$port")
    if [[ -n "$pid" ]]; then continue; fi
    if port_open "$port" || port_open $((port + 10000)); then
      die "redis-cluster: $HOST:$port (or its bus port $((port + 10000))) is taken by a process not started here; set REDIS_CLUSTER_PORT"
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    fresh=1
    log "redis-cluster: starting node $HOST:$port"
    redis-server --daemonize yes --bind "$HOST" --port "$port" --cluster-enabled yes \
      --cluster-config-file "$dir/nodes.conf" --cluster-node-timeout 5000 \
      --save "" --appendonly no --dir "$dir" --pidfile "$dir/redis.pid" \
      --logfile "$dir/redis.log" >/dev/null 9>&-
  done
  for port in $(redis_cluster_ports); do
    for ((i = 0; i < 100; i++)); do
      [[ "$(redis_cluster_cli "$port" ping)" == PONG ]] && break
      sleep 0.1
    done
    [[ "$(redis_cluster_cli "$port" ping)" == PONG ]] ||
      { tail -n 20 "$REDIS_CLUSTER_DIR/$port/redis.log" >&2 || true; die "redis-cluster: no PONG from $HOST:$port within 10s"; }
  done

  # Slots are assigned once, to nodes that hold none (a fresh start); a node of ours that
  # runs but lost its peers is not re-created here: `down` first.
  local assigned
  assigned=$(redis_cluster_cli "$REDIS_CLUSTER_PORT" cluster info | tr -d '\r' | sed -n 's/^cluster_slots_assigned://p')
  if [[ "$assigned" == 0 ]]; then
    local -a nodes=()
    for port in $(redis_cluster_ports); do nodes+=("$HOST:$port"); done
    log "redis-cluster: redis-cli --cluster create ${nodes[*]} (3 masters, no replicas)"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
      >"$REDIS_CLUSTER_DIR/create.log" 2>&1 ||
      { tail -n 20 "$REDIS_CLUSTER_DIR/create.log" >&2; die "redis-cluster: 'redis-cli --cluster create' failed"; }
  elif [[ $fresh == 1 ]]; then
    die "redis-cluster: some nodes already hold slots but others were just started; run '$0 down' first"
  fi
  for ((i = 0; i < 150; i++)); do
    redis_cluster_ok && break
    sleep 0.2
  done
  redis_cluster_ok || die "redis-cluster: the cluster did not reach cluster_state:ok within 30s"
  log "redis-cluster: started (ours) on $(redis_cluster_nodes)"
}

redis_cluster_down() {
  local port pid any=0
  for port in $(redis_cluster_ports); do
    pid=$(redis_cluster_node_pid "$port")
    if [[ -n "$pid" ]]; then
      stop_pid "redis-cluster $port" "$pid" 30
      any=1
    fi
  done
  rm -rf "$REDIS_CLUSTER_DIR"
  if [[ $any == 1 ]]; then log "redis-cluster: stopped"; fi
}

# One status line; 0 when the cluster is healthy.
redis_cluster_status() {
  local state=down ours="-" port
  redis_cluster_ok && state=up
  for port in $(redis_cluster_ports); do
    if [[ -n "$(redis_cluster_node_pid "$port")" ]]; then ours="ours"; fi
  done
  if [[ $state == up && $ours == - ]]; then ours="external"; fi
  printf '%-8s %-5s %-16s %s\n' "redis-c" "$state" "$(redis_cluster_nodes)" "$ours"
  [[ $state == up ]]
}
