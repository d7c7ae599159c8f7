#!/usr/bin/env bash
# Installs what the build, the tests and the local mesh need on a fresh Debian machine, and nothing that is
# already there. Safe to run again. Needs root (or sudo) only when something must be installed.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

# Rust toolchain: the one on the machine; we cannot fetch another.
command -v cargo >/dev/null || { log "cargo is missing: install a Rust toolchain (1.95 or newer) first"; exit 1; }

# Debian packages: iproute2 for task network namespaces, iptables for transparent proxy tests.
apt_wanted=()
command -v ip >/dev/null || apt_wanted+=(iproute2)
command -v iptables >/dev/null || apt_wanted+=(iptables)
if [ "${#apt_wanted[@]}" -gt 0 ]; then
  log "installing Debian packages: ${apt_wanted[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_wanted[@]}" >/dev/null
fi

# Python packages for the compatibility tests: a real Consul client library and the AWS emulator.
PY=${PYTHON:-python3}
pip_wanted=()
"$PY" -c 'import consul' 2>/dev/null || pip_wanted+=("py-consul==1.8.0")
"$PY" -c 'import moto.server' 2>/dev/null || pip_wanted+=("moto[server]==5.2.1")
if [ "${#pip_wanted[@]}" -gt 0 ]; then
  log "installing Python packages: ${pip_wanted[*]}"
  "$PY" -m pip install -q --disable-pip-version-check "${pip_wanted[@]}"
fi

# cargo-nextest gives per-test isolation and a clear summary; plain cargo test is the fallback.
if ! cargo nextest --version >/dev/null 2>&1; then
  log "cargo-nextest not found; tests will run with cargo test"
fi
log "ready"
