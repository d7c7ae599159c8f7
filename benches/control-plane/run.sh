#!/usr/bin/env bash
# Control-plane benchmark: `consul-ecs mesh-init` and `consul-ecs health-sync` as real processes against a
# `consul-ecs dev-server` process, with an ECS task metadata endpoint and a recording proxy in front of
# Consul (crates/mesh-init/examples/bench_harness.rs). Prints:
#   * Consul writes per task start (mesh-init), per health change, in a steady state of STEADY seconds,
#     and at shutdown (health-sync after SIGTERM);
#   * peak RSS (VmHWM) of mesh-init, and the steady RSS (VmRSS) and peak RSS of health-sync;
# next to upstream's published figures where there are any (spec/anchors §3.3).
#
# Loopback only, bounded durations, everything started here is killed on exit.
# Usage: benches/control-plane/run.sh   (env: STEADY=10 SKIP_BUILD=1)
set -euo pipefail

STEADY="${STEADY:-10}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  sleep 0.3
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if [ -z "${SKIP_BUILD:-}" ]; then
  echo "building (release)..." >&2
  (cd "$ROOT" && cargo build -q --release -p consul-ecs --bin consul-ecs \
    && cargo build -q --release -p consul-ecs-mesh-init --example bench_harness)
fi
BIN="$ROOT/target/release/consul-ecs"
HARNESS="$ROOT/target/release/examples/bench_harness"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Consul.
CONSUL_PORT="$(free_port)"
"$BIN" dev-server -http-addr "127.0.0.1:$CONSUL_PORT" -log-level warn >"$WORK/consul.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$CONSUL_PORT/v1/status/leader" >/dev/null 2>&1 && break
  sleep 0.05
done

# Metadata endpoint and recording proxy, driven through a coprocess.
coproc HARNESS_PROC { "$HARNESS" "127.0.0.1:$CONSUL_PORT"; }
PIDS+=("$HARNESS_PROC_PID")
read -r -u "${HARNESS_PROC[0]}" HELLO
METADATA="$(sed -E 's/.*metadata=([^ ]+).*/\1/' <<<"$HELLO")"
PROXY="$(sed -E 's/.*consul=([^ ]+).*/\1/' <<<"$HELLO")"
PROXY_PORT="${PROXY##*:}"

# The coprocess's descriptors do not survive into subshells, so these set variables instead of printing.
cmd() { echo "$*" >&"${HARNESS_PROC[1]}"; read -r -u "${HARNESS_PROC[0]}" REPLY; }
count() { # sets WRITES and READS
  cmd count
  WRITES="${REPLY#writes=}"; WRITES="${WRITES%% *}"
  READS="${REPLY##*reads=}"
}

mkdir -p "$WORK/consul-volume"
export CONSUL_ECS_CONFIG_JSON
CONSUL_ECS_CONFIG_JSON="$(cat <<EOF
{"bootstrapDir": "$WORK/consul-volume",
 "consulServers": {"hosts": "127.0.0.1", "http": {"port": $PROXY_PORT, "https": false}, "grpc": {"tls": false}},
 "healthSyncContainers": ["app"],
 "service": {"name": "web", "port": 8080},
 "proxy": {"upstreams": [{"destinationName": "api", "localBindPort": 1234}]},
 "transparentProxy": {"enabled": false}}
EOF
)"
export ECS_CONTAINER_METADATA_URI_V4="$METADATA"
unset CONSUL_HTTP_TOKEN AWS_REGION || true

# --- mesh-init: one task start -------------------------------------------------------------------
START_MS=$(date +%s%3N)
/usr/bin/time -f '%M' -o "$WORK/mesh-init.maxrss" "$BIN" mesh-init 2>"$WORK/mesh-init.log"
END_MS=$(date +%s%3N)
count; MESH_INIT_WRITES="$WRITES"
MESH_INIT_KB="$(tail -n1 "$WORK/mesh-init.maxrss")"

# --- health-sync ------------------------------------------------------------------------------------
"$BIN" health-sync 2>"$WORK/health-sync.log" &
HS=$!
PIDS+=("$HS")
# Wait until it has read its checks (its start-up reads) and then some ticks.
for _ in $(seq 100); do
  count; [ "$READS" -ge 4 ] && break
  sleep 0.1
done
sleep 2
count; W0="$WRITES"

wait_writes() { # wait until the write count exceeds $1 (bounded), then let it settle
  for _ in $(seq 100); do
    count; [ "$WRITES" -gt "$1" ] && break
    sleep 0.05
  done
  sleep 1.5
}
cmd health app HEALTHY
wait_writes "$W0"
count; W1="$WRITES"
cmd health consul-dataplane HEALTHY
wait_writes "$W1"
count; W2="$WRITES"
cmd health app UNHEALTHY
wait_writes "$W2"
count; W3="$WRITES"
cmd health app HEALTHY
wait_writes "$W3"
count; W4="$WRITES"

sleep "$STEADY"
count; W5="$WRITES"
HS_RSS_KB="$(awk '/VmRSS/ {print $2}' "/proc/$HS/status")"
HS_HWM_KB="$(awk '/VmHWM/ {print $2}' "/proc/$HS/status")"
HS_ANON_KB="$(awk '/RssAnon/ {print $2}' "/proc/$HS/status")"
HS_FILE_KB="$(awk '/RssFile/ {print $2}' "/proc/$HS/status")"
# The executable alone (loading, relocating, printing its version), for scale.
/usr/bin/time -f '%M' -o "$WORK/version.maxrss" "$BIN" version >/dev/null
BASE_KB="$(tail -n1 "$WORK/version.maxrss")"

# --- shutdown: SIGTERM, the dataplane stops, deregistration ------------------------------------------
kill -TERM "$HS"
sleep 1.5
count; W6="$WRITES"
cmd stop consul-dataplane
for _ in $(seq 100); do kill -0 "$HS" 2>/dev/null || break; sleep 0.05; done
HS_STATUS=0
wait "$HS" || HS_STATUS=$?
count; W7="$WRITES"

mb() { awk -v kb="$1" 'BEGIN { printf "%.1f MB", kb / 1024 }'; }

echo
echo "control plane (consul-ecs $("$BIN" version | awk '{print $2}'), Consul = consul-ecs dev-server, loopback)"
printf '  %-52s %s\n' "mesh-init wall time" "$((END_MS - START_MS)) ms"
printf '  %-52s %s\n' "Consul writes per task start (mesh-init)" "$MESH_INIT_WRITES   (upstream: 2, service + sidecar)"
printf '  %-52s %s\n' "writes: app HEALTHY" "$((W1 - W0))"
printf '  %-52s %s\n' "writes: dataplane HEALTHY (both dataplane checks)" "$((W2 - W1))"
printf '  %-52s %s\n' "writes: app UNHEALTHY (app + aggregate)" "$((W3 - W2))"
printf '  %-52s %s\n' "writes: app HEALTHY again" "$((W4 - W3))"
printf '  %-52s %s\n' "writes in ${STEADY} s of steady state" "$((W5 - W4))   (upstream before #320: 1/s per task; after #355: 0)"
printf '  %-52s %s\n' "writes on SIGTERM (all checks critical)" "$((W6 - W5))"
printf '  %-52s %s\n' "writes after the dataplane stopped (deregistration)" "$((W7 - W6))   (exit status $HS_STATUS)"
printf '  %-52s %s\n' "mesh-init peak RSS (max RSS)" "$(mb "$MESH_INIT_KB")   (target <= 8 MB)"
printf '  %-52s %s\n' "health-sync steady RSS (VmRSS)" "$(mb "$HS_RSS_KB")   (target <= 8 MB)"
printf '  %-52s %s\n' "health-sync peak RSS (VmHWM)" "$(mb "$HS_HWM_KB")   (upstream, 2022: 35 MB peak)"
printf '  %-52s %s\n' "health-sync RSS: anonymous / file-backed" "$(mb "$HS_ANON_KB") / $(mb "$HS_FILE_KB")"
printf '  %-52s %s\n' "\`consul-ecs version\` max RSS (the executable alone)" "$(mb "$BASE_KB")"
echo "  upstream figures: consul.io task-resource-usage (health-sync 6% CPU / 35 MB on 0.25 vCPU Fargate),"
echo "  consul-ecs#309/#320/#355 (per-tick writes, then one atomic write per changed tick)."
