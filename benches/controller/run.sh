#!/usr/bin/env bash
# Controller benchmark: starts the dev server (consul-ecs dev-server, ACLs on) on a free loopback
# port as its own process, seeds N tasks' tokens and services, then runs reconcile passes with an
# in-memory ECS (moto is far too slow for 10,000 tasks) and prints a table per pass.
#
# usage: bash benches/controller/run.sh [--tasks 10000] [--stop 1000]
# PROFILE=dev uses debug builds (faster to build, slower to run).
set -euo pipefail
cd "$(dirname "$0")/../.."

profile=${PROFILE:-release}
if [ "$profile" = release ]; then
    cargo build --release -q -p consul-ecs
    cargo build --release -q -p consul-ecs-controller --features test-util --example controller-bench
    dir=target/release
else
    cargo build -q -p consul-ecs
    cargo build -q -p consul-ecs-controller --features test-util --example controller-bench
    dir=target/debug
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=$(cat /proc/sys/kernel/random/uuid)
"$dir/consul-ecs" dev-server --http-addr "127.0.0.1:$port" --acl-enabled \
    --acl-default-policy deny --bootstrap-token "$token" >/dev/null 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

bench="$dir/examples/controller-bench"
timeout 900 "$bench" seed --consul "127.0.0.1:$port" --token "$token" "$@"
timeout 900 "$bench" run --consul "127.0.0.1:$port" --token "$token" "$@"
