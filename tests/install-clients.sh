#!/usr/bin/env bash
# System packages the e2e suite needs beyond PyPI: a JDK and Debian's JGit for the git clients
# (tests/e2e/test_cli_clients.py), and bubblewrap, the sandbox extension runs start their agent in.
# Installs only what is missing; safe to run again. (isomorphic-git comes from npm, installed by its fixture.)
set -euo pipefail

need=()
command -v javac >/dev/null 2>&1 || need+=(openjdk-17-jdk-headless)
[ -f /usr/share/java/org.eclipse.jgit.jar ] || need+=(libjgit-java)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; then
    $sudo apt-get update -qq
    $sudo apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
  fi
fi
