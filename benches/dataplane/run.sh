#!/usr/bin/env bash
# Sidecar data plane benchmark: client -> sidecar A -> mTLS -> sidecar B -> HTTP server, through
#   (1) a pair of our consul-dataplane processes (static source, same certificates),
#   (2) a pair of HAProxy processes configured for the same mTLS,
#   (3) direct to the HTTP server (nginx-light),
# printing requests/s and p50/p99 with keep-alive, new connections/s (Connection: close), and the
# peak RSS (VmHWM) of every proxy process, plus our idle RSS with 10 upstream listeners.
#
# Loopback only, bounded durations, everything started here is killed on exit.
# Usage: benches/dataplane/run.sh   (env: DURATION=10 CONNS=32 THREADS=1 SKIP_INSTALL=1)
set -euo pipefail

DURATION="${DURATION:-10}"
CONNS="${CONNS:-32}"
# Worker threads of each proxy process (ours: envoy.concurrency; HAProxy: nbthread).
THREADS="${THREADS:-1}"
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

need() { command -v "$1" >/dev/null 2>&1; }
if [ -z "${SKIP_INSTALL:-}" ] && ! { need haproxy && need wrk && need nginx; }; then
  echo "installing haproxy wrk nginx-light" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy wrk nginx-light >/dev/null
fi

echo "building (release)..." >&2
(cd "$ROOT" && cargo build -q --release -p consul-dataplane-rs --features mint --bin consul-dataplane --bin dataplane-mint-certs)
BIN="$ROOT/target/release/consul-dataplane"
MINT="$ROOT/target/release/dataplane-mint-certs"

CERTS="$WORK/certs"
"$MINT" "$CERTS" web api
TD="$(cat "$CERTS/trust-domain")"
SNI="api.default.dc1.internal.$TD"

# Ports (loopback).
APP=18080
OURS_A=18100; OURS_B=18101
HAP_A=18200; HAP_B=18201

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 never opened" >&2
  for f in "$WORK"/*.log; do echo "== $f" >&2; tail -5 "$f" >&2; done
  return 1
}

# --- HTTP server -----------------------------------------------------------------------------
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$APP;
    location / { return 200 "hello from the app\n"; }
  }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
PIDS+=($!)
wait_port $APP

# --- our pair --------------------------------------------------------------------------------
# The benchmarked upstream plus 9 idle ones (the "10 upstreams" of the memory target).
upstreams_json_named() {
  printf '{"destinationName":"api","localBindPort":%s,"endpoints":["127.0.0.1:%s"]}' "$OURS_A" "$OURS_B"
  for i in $(seq 1 9); do
    printf ',{"destinationName":"api%s","localBindPort":%s,"endpoints":["127.0.0.1:%s"]}' "$i" $((18110 + i)) "$OURS_B"
  done
}
write_ours() { # name cert upstreams-json public-port app-port base-port
  cat > "$WORK/$1.json" <<EOF
{"logging":{"logLevel":"warn"},
 "envoy":{"readyBindPort":$(( $6 + 0 )),"adminBindPort":$(( $6 + 1 )),"gracefulPort":$(( $6 + 2 )),
          "publicBindAddress":"127.0.0.1","concurrency":$THREADS},
 "telemetry":{"prometheus":{"bindPort":$(( $6 + 3 ))}},
 "static":{"certFile":"$CERTS/$2.crt","keyFile":"$CERTS/$2.key","caFile":"$CERTS/ca.pem",
           "publicPort":$4,"localServicePort":$5,"upstreams":[$3]}}
EOF
}
write_ours ours-b api "" $OURS_B $APP 18300
write_ours ours-a web "$(upstreams_json_named)" 18102 1 18310
"$BIN" -config-file "$WORK/ours-b.json" 2>"$WORK/ours-b.log" &
OURS_B_PID=$!; PIDS+=($OURS_B_PID)
"$BIN" -config-file "$WORK/ours-a.json" 2>"$WORK/ours-a.log" &
OURS_A_PID=$!; PIDS+=($OURS_A_PID)
wait_port 18300; wait_port 18310

# --- HAProxy pair ----------------------------------------------------------------------------
cat > "$WORK/hap-b.cfg" <<EOF
global
  nbthread $THREADS
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend public
  bind 127.0.0.1:$HAP_B ssl crt $CERTS/api.pem ca-file $CERTS/ca.pem verify required
  default_backend app
backend app
  server app 127.0.0.1:$APP
EOF
# Connect leafs carry no DNS name. HAProxy 2.6 checks the server certificate's DNS names against the
# SNI whenever `sni` is set (`verifyhost` defaults to it and cannot be turned off), so with
# `sni str($SNI)` every handshake fails. HAProxy therefore sends no SNI and verifies the chain only;
# ours sends the SNI and checks the SPIFFE URI on top of the chain (more work on our side).
cat > "$WORK/hap-a.cfg" <<EOF
global
  nbthread $THREADS
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend upstream
  bind 127.0.0.1:$HAP_A
  default_backend api
backend api
  server b 127.0.0.1:$HAP_B ssl crt $CERTS/web.pem ca-file $CERTS/ca.pem verify required
EOF
haproxy -W -db -f "$WORK/hap-b.cfg" >"$WORK/hap-b.log" 2>&1 &
HAP_B_PID=$!; PIDS+=($HAP_B_PID)
haproxy -W -db -f "$WORK/hap-a.cfg" >"$WORK/hap-a.log" 2>&1 &
HAP_A_PID=$!; PIDS+=($HAP_A_PID)
wait_port $HAP_A; wait_port $HAP_B

# HAProxy -W runs a master and a worker: measure the worker.
worker_of() { pgrep -P "$1" haproxy | head -1; }
HAP_A_W="$(worker_of $HAP_A_PID)"; HAP_B_W="$(worker_of $HAP_B_PID)"

kb() { awk -v k="$2" '$1==k":" {print $2}' "/proc/$1/status"; }

# --- sanity: each path answers ---------------------------------------------------------------
for port in $APP $OURS_A $HAP_A; do
  out="$(curl -s --max-time 5 "http://127.0.0.1:$port/" || true)"
  if [ "$out" != "hello from the app" ]; then
    echo "path via port $port does not answer (got: $out)" >&2
    for f in "$WORK"/*.log; do echo "== $f" >&2; tail -n 5 "$f" >&2; done
    exit 1
  fi
done

IDLE_OURS_A="$(kb $OURS_A_PID VmRSS)"
IDLE_OURS_B="$(kb $OURS_B_PID VmRSS)"
IDLE_HAP_A="$(kb "$HAP_A_W" VmRSS)"
IDLE_HAP_B="$(kb "$HAP_B_W" VmRSS)"

# --- load ------------------------------------------------------------------------------------
declare -A RPS P50 P99 CPS
to_ms() { # wrk latency like 1.23ms / 512.00us / 1.02s -> ms
  awk -v v="$1" 'BEGIN{
    if (v ~ /us$/) { sub(/us$/,"",v); printf "%.3f", v/1000 }
    else if (v ~ /ms$/) { sub(/ms$/,"",v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/,"",v); printf "%.3f", v*1000 }
    else printf "%s", v }'
}
run_keepalive() { # label port
  local out; out="$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$2/")"
  RPS[$1]="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
  P50[$1]="$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")"
  P99[$1]="$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")"
}
run_close() { # label port
  local out; out="$(wrk -t2 -c"$CONNS" -d"${DURATION}s" -H 'Connection: close' "http://127.0.0.1:$2/")"
  CPS[$1]="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
}
echo "load: wrk -t2 -c$CONNS -d${DURATION}s --latency (keep-alive), then with 'Connection: close'" >&2
for label in direct ours haproxy; do
  case $label in direct) port=$APP ;; ours) port=$OURS_A ;; haproxy) port=$HAP_A ;; esac
  run_keepalive $label $port
  run_close $label $port
done

PEAK_OURS_A="$(kb $OURS_A_PID VmHWM)"; PEAK_OURS_B="$(kb $OURS_B_PID VmHWM)"
PEAK_HAP_A="$(kb "$HAP_A_W" VmHWM)"; PEAK_HAP_B="$(kb "$HAP_B_W" VmHWM)"

# --- report ----------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a" }'; }
echo
echo "sidecar data plane benchmark ($(nproc) cores, $THREADS worker thread(s) per proxy, ${DURATION}s per run, $CONNS connections)"
printf "%-10s %12s %10s %10s %14s\n" path "req/s(ka)" "p50 ms" "p99 ms" "new conn/s"
for label in direct ours haproxy; do
  printf "%-10s %12s %10s %10s %14s\n" $label "${RPS[$label]}" "${P50[$label]}" "${P99[$label]}" "${CPS[$label]}"
done
echo
printf "%-22s %10s %10s\n" "RSS (KiB)" "idle" "peak"
printf "%-22s %10s %10s\n" "ours A (10 upstreams)" "$IDLE_OURS_A" "$PEAK_OURS_A"
printf "%-22s %10s %10s\n" "ours B" "$IDLE_OURS_B" "$PEAK_OURS_B"
printf "%-22s %10s %10s\n" "haproxy A (worker)" "$IDLE_HAP_A" "$PEAK_HAP_A"
printf "%-22s %10s %10s\n" "haproxy B (worker)" "$IDLE_HAP_B" "$PEAK_HAP_B"
echo
echo "ours/haproxy: req/s $(ratio "${RPS[ours]}" "${RPS[haproxy]}")x (target >= 1.2)," \
  "new conn/s $(ratio "${CPS[ours]}" "${CPS[haproxy]}")x (target >= 2)," \
  "p99 $(ratio "${P99[ours]}" "${P99[haproxy]}")x (target <= 1)"
echo "ours RSS: idle A $((IDLE_OURS_A / 1024)) MiB (target <= 10), peak A $((PEAK_OURS_A / 1024)) MiB (target <= 25)"
