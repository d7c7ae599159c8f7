#!/usr/bin/env bash
# The main job: builds consul-ecs and runs the local Consul-compatible dev server on the embedded defaults.
# Later releases grow this into the whole local mesh (dev server, moto, controller, tasks under ecs-local).
set -euo pipefail
cd "$(dirname "$0")/.."

ADDR=${CONSUL_DEV_ADDR:-127.0.0.1:8500}
DATA_DIR=${CONSUL_DEV_DATA_DIR:-.local/dev-server}

echo "[main] building consul-ecs (release)…" >&2
cargo build --release --locked -p consul-ecs --quiet
mkdir -p "$DATA_DIR"

cat >&2 <<MSG
[main] starting the dev server on http://$ADDR (state in $DATA_DIR); Ctrl-C stops it.
[main] try:
  curl -s http://$ADDR/v1/agent/self | head -c 300; echo
  curl -s -X PUT http://$ADDR/v1/catalog/register -d '{"Node":"n1","Address":"198.18.0.1","Service":{"Service":"web","Port":8080}}'
  curl -s http://$ADDR/v1/health/service/web?passing
  curl -s http://$ADDR/v1/connect/ca/roots | head -c 300; echo
MSG
exec target/release/consul-ecs dev-server --http-addr "$ADDR" --data-dir "$DATA_DIR"
