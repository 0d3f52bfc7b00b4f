#!/usr/bin/env bash
# A 3-node nats-server cluster with JetStream on loopback, for trying jetsource on a cluster
# (docs/operations.md, "Cluster"). Every node has its own client, route and monitor port and its
# own store directory under $CLUSTER_DIR; processes are tracked (and stopped) by their PID files.
#
#   scripts/cluster.sh up             start the nodes that are not running; wait for a meta leader
#   scripts/cluster.sh down           stop every node (SIGTERM, then SIGKILL after 10 s)
#   scripts/cluster.sh kill N         SIGKILL node N (1..3)
#   scripts/cluster.sh restart N      stop node N if it runs, start it again (same store)
#   scripts/cluster.sh pause N        SIGSTOP node N;   scripts/cluster.sh resume N: SIGCONT
#   scripts/cluster.sh status         per node: pid, ports, meta leader seen
#   scripts/cluster.sh urls           nats://127.0.0.1:P1,nats://127.0.0.1:P2,... (for --nats-url)
#
# Environment: CLUSTER_DIR (default ./.cluster), CLUSTER_BASE_PORT (default 14222: node N gets
# client port BASE+N-1, route port BASE+100+N-1, monitor port BASE+200+N-1), NATS_SERVER (binary).
set -euo pipefail

DIR=${CLUSTER_DIR:-./.cluster}
BASE=${CLUSTER_BASE_PORT:-14222}
BIN=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
NODES=3

client_port() { echo $((BASE + $1 - 1)); }
route_port() { echo $((BASE + 100 + $1 - 1)); }
monitor_port() { echo $((BASE + 200 + $1 - 1)); }
pid_file() { echo "$DIR/n$1.pid"; }

die() { echo "cluster.sh: $*" >&2; exit 1; }

node_arg() {
  [[ "${1:-}" =~ ^[1-3]$ ]] || die "node must be 1, 2 or 3 (got '${1:-}')"
}

pid_of() {
  local f; f=$(pid_file "$1")
  [[ -f "$f" ]] || return 1
  local pid; pid=$(cat "$f")
  # Only a live nats-server counts (a stale file after a reboot names someone else).
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && grep -q nats-server "/proc/$pid/cmdline" 2>/dev/null \
    && echo "$pid"
}

start_node() {
  local n=$1 routes="" m
  if pid_of "$n" >/dev/null; then echo "n$n already running (pid $(pid_of "$n"))"; return; fi
  for m in $(seq 1 $NODES); do
    [[ $m == "$n" ]] && continue
    routes+="${routes:+,}nats://127.0.0.1:$(route_port "$m")"
  done
  mkdir -p "$DIR/n$n"
  local log="$DIR/n$n.log" from pid
  from=$(($( [[ -f "$log" ]] && wc -c < "$log" || echo 0) + 1))
  "$BIN" -js -a 127.0.0.1 -p "$(client_port "$n")" -sd "$DIR/n$n" \
    --server_name "n$n" --cluster_name jetsource --cluster "nats://127.0.0.1:$(route_port "$n")" \
    --routes "$routes" -m "$(monitor_port "$n")" -l "$log" &
  pid=$!
  echo "$pid" > "$(pid_file "$n")"
  # Started once its route port listens (bound last); a port in use makes it exit at once.
  for _ in $(seq 1 200); do
    tail -c +"$from" "$log" 2>/dev/null | grep -q "Listening for route connections" && break
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$(pid_file "$n")"
      die "n$n exited during start-up: $(tail -c +"$from" "$log" | grep -m1 -E 'FTL|address already in use' ||
        echo "see $log"); a port in use? pick others with CLUSTER_BASE_PORT"
    fi
    sleep 0.05
  done
  echo "n$n started (pid $pid, client $(client_port "$n"), monitor $(monitor_port "$n"))"
}

meta_leader() {
  curl -fs --max-time 1 "http://127.0.0.1:$(monitor_port "$1")/jsz" 2>/dev/null | tr -d ' \n' |
    sed -n 's/.*"meta_cluster":{[^}]*"leader":"\([^"]*\)".*/\1/p'
}

wait_for_leader() {
  local deadline=$((SECONDS + 30)) n l
  while ((SECONDS < deadline)); do
    for n in $(seq 1 $NODES); do
      l=$(meta_leader "$n" || true)
      if [[ -n "$l" ]]; then echo "meta leader: $l"; return 0; fi
    done
    sleep 0.2
  done
  die "no meta leader after 30 s (logs: $DIR/n*.log)"
}

stop_node() {
  local n=$1 pid
  pid=$(pid_of "$n") || { rm -f "$(pid_file "$n")"; return 0; }
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$(pid_file "$n")"
  echo "n$n stopped"
}

urls() {
  local out="" n
  for n in $(seq 1 $NODES); do out+="${out:+,}nats://127.0.0.1:$(client_port "$n")"; done
  echo "$out"
}

case "${1:-}" in
  up)
    for n in $(seq 1 $NODES); do start_node "$n"; done
    wait_for_leader
    echo "urls: $(urls)"
    ;;
  down) for n in $(seq 1 $NODES); do stop_node "$n"; done ;;
  kill)
    node_arg "${2:-}"
    pid=$(pid_of "$2") || die "n$2 is not running"
    kill -KILL "$pid"; rm -f "$(pid_file "$2")"; echo "n$2 killed (pid $pid)"
    ;;
  restart) node_arg "${2:-}"; stop_node "$2"; start_node "$2" ;;
  pause) node_arg "${2:-}"; pid=$(pid_of "$2") || die "n$2 is not running"; kill -STOP "$pid"; echo "n$2 paused" ;;
  resume) node_arg "${2:-}"; pid=$(pid_of "$2") || die "n$2 is not running"; kill -CONT "$pid"; echo "n$2 resumed" ;;
  status)
    for n in $(seq 1 $NODES); do
      if pid=$(pid_of "$n"); then
        echo "n$n pid $pid client $(client_port "$n") monitor $(monitor_port "$n") meta leader: $(meta_leader "$n" || true)"
      else
        echo "n$n down"
      fi
    done
    ;;
  urls) urls ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
