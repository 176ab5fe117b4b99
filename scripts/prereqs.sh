#!/usr/bin/env bash
# Installs the system prerequisites of the local stack (see ../shared/STACK.md in the team docs).
# Root: apt-get installs what is missing. Otherwise: a list of what to install, exit 1.
set -euo pipefail
missing=()
command -v java >/dev/null 2>&1 && java -version 2>&1 | grep -q 'version "17' || missing+=(openjdk-17-jre-headless)
[ -x "$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | head -1)/initdb" ] || missing+=(postgresql)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "prereqs: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The Debian packages start services we do not use; ours run on private ports.
    for svc in prometheus prometheus-alertmanager; do
      (service "$svc" stop || pkill -x "$svc") >/dev/null 2>&1 || true
    done
  else
    echo "prereqs: missing Debian packages: ${missing[*]}" >&2
    echo "prereqs: install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi
