#!/usr/bin/env bash
# System packages the e2e suite's git clients need beyond PyPI: a JDK and Debian's JGit (tests/e2e/test_cli_clients.py).
# Installs only what is missing; safe to run again. (isomorphic-git comes from npm, installed by its fixture.)
set -euo pipefail

need=()
command -v javac >/dev/null 2>&1 || need+=(openjdk-17-jdk-headless)
[ -f /usr/share/java/org.eclipse.jgit.jar ] || need+=(libjgit-java)
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; then
    $sudo apt-get update -qq
    $sudo apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
  fi
fi
