#!/usr/bin/env bash
# Install what the git benchmark needs; safe to run again (installs only what is missing).
#   - lighttpd (Debian) serves `git http-backend` over CGI as the reference server
# The runner needs nothing else from PyPI: it reads /proc itself (py-spy is optional, for --py-spy).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v lighttpd >/dev/null 2>&1 || need+=(lighttpd)
command -v git >/dev/null 2>&1 || need+=(git)
if [ ! -x "$(git --exec-path 2>/dev/null)/git-http-backend" ]; then need+=(git); fi
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y --no-install-recommends "${need[@]}"; then
    $sudo apt-get update
    $sudo apt-get install -y --no-install-recommends "${need[@]}"
  fi
fi
# The Debian package enables a system-wide lighttpd service; the benchmark starts its own instance on a
# free loopback port with its own config, so a running system instance is harmless but not needed.

python="${PYTHON:-.venv/bin/python}"
if [ ! -x "$python" ]; then
  echo "no virtualenv at .venv: create it with 'python3 -m venv .venv && .venv/bin/pip install -e .[test]'" >&2
  exit 1
fi
if ! "$python" -c 'import control.cli' >/dev/null 2>&1; then
  "$python" -m pip install --quiet -e .
fi
echo "bench setup ok: $(lighttpd -v 2>&1 | head -1); $(git --version); $("$python" --version)"

# Control API benchmark (bench/api_bench.py): wrk from Debian is its load generator; py-spy (the `bench` extra)
# profiles the server's workers with --profile.
if ! command -v wrk >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends wrk || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends wrk; }
fi
echo "api bench setup ok: $(wrk --version 2>&1 | head -1)"
