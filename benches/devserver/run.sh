#!/usr/bin/env bash
# Runs the dev-server benchmark: installs etcd (the peer) if it is missing, builds consul-ecs and the
# benchmark in release mode, and runs the benchmark with its default sizes. Extra arguments go to the
# benchmark, e.g. `bash benches/devserver/run.sh --writes 500 --watchers 200`.
#
# Everything listens on 127.0.0.1 only. The benchmark starts and stops both servers itself; the trap
# below stops the benchmark (which then stops them) if this script is interrupted, and the whole run is
# bounded by a timeout.
set -euo pipefail

cd "$(dirname "$0")/../.."

if ! command -v etcd >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "run.sh: etcd is not installed and installing it needs root: apt-get install -y etcd-server" >&2
        exit 1
    fi
    echo "run.sh: installing etcd-server" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q etcd-server >&2
fi
etcd_bin=$(command -v etcd)

echo "run.sh: building consul-ecs and devserver-bench (release)" >&2
cargo build --release -q -p consul-ecs -p devserver-bench

bench_pid=""
stop_bench() {
    if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
        # timeout passes SIGTERM on; the benchmark then stops both servers before it exits.
        kill -TERM "$bench_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$bench_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$bench_pid" 2>/dev/null || true
    fi
}
trap stop_bench EXIT
trap 'stop_bench; exit 130' INT TERM

# 20 minutes is far more than the default sizes take (about a minute); it bounds a hung run.
timeout --signal=TERM --kill-after=15 1200 \
    target/release/devserver-bench \
    --consul-ecs target/release/consul-ecs \
    --etcd "$etcd_bin" \
    "$@" &
bench_pid=$!
wait "$bench_pid"
