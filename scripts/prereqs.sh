#!/usr/bin/env bash
# System prerequisites of the local stack (parity/devstack): Java 17 (Debezium, DynamoDB Local),
# PostgreSQL 15 binaries (a private cluster per state dir), Prometheus + Alertmanager + Pushgateway
# (the reconcile-job publishing tests start their own on free ports), docker-compose
# (static validation of the compose file only) and npm (DynamoDB Local and s3rver are fetched by
# parity at first use, into ~/.cache/parity).
# As root: installs what is missing with apt-get, without letting the packages start their system
# services (ours run on private, free ports). Otherwise: prints what to install and exits 1.
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
java_is_17() { have java && java -version 2>&1 | head -1 | grep -q '"17\.'; }

java_is_17 || missing+=(openjdk-17-jre-headless)
pg_bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -n "$pg_bindir" ] && [ -x "$pg_bindir/initdb" ] && [ -x "$pg_bindir/postgres" ] || missing+=(postgresql)
have prometheus || missing+=(prometheus)
have promtool || missing+=(prometheus)
have prometheus-alertmanager || missing+=(prometheus-alertmanager)
have prometheus-pushgateway || missing+=(prometheus-pushgateway)
have docker-compose || missing+=(docker-compose)
have npm || missing+=(npm)
have runuser || missing+=(util-linux)

if [ ${#missing[@]} -eq 0 ]; then
  echo "prereqs: all present (postgres binaries in $pg_bindir)"
  exit 0
fi
# de-duplicate (prometheus may be listed twice)
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" != 0 ]; then
  echo "prereqs: missing Debian packages: ${missing[*]}" >&2
  echo "prereqs: install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "prereqs: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 = "do not start services": postgresql (5432), prometheus (9090),
# alertmanager (9093/9094), pushgateway (9091) stay down instead of holding ports. Restored afterwards.
policy=/usr/sbin/policy-rc.d
saved=""
if [ -e "$policy" ]; then saved=$(mktemp); cp -p "$policy" "$saved"; fi
restore_policy() { if [ -n "$saved" ]; then mv "$saved" "$policy"; else rm -f "$policy"; fi; }
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' > "$policy"
chmod 755 "$policy"

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Where systemd runs, keep the packaged services from starting at boot too (only those we installed).
if have systemctl && [ -d /run/systemd/system ]; then
  for pkg in "${missing[@]}"; do
    case "$pkg" in
      prometheus|prometheus-alertmanager|prometheus-pushgateway|postgresql)
        systemctl disable --now "$pkg" >/dev/null 2>&1 || true ;;
    esac
  done
fi
echo "prereqs: done"
