#!/bin/bash
# The Vault provider's backends on loopback: an OpenBao dev server and a MariaDB server for the
# database secrets engine. Idempotent: installs what is missing (cached under $BERTH_CACHE), starts
# what is not already healthy, then writes $BERTH_CACHE/testbed/vault.env (KEY=value lines, which
# `make test` loads and the provider's integration tests read) and prints it.
# Stop both with testbed/vault/down.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${BERTH_CACHE:-$HOME/.cache/berth}
STATE=$CACHE/testbed/vault
mkdir -p "$STATE"
ENV_FILE=$CACHE/testbed/vault.env
started=$(date +%s)
# The scripts need curl (health checks); a bare Debian may lack it.
if ! command -v curl >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { echo "up.sh: curl is missing; install it (apt-get install curl)" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >&2
fi
{
    "$HERE/start-openbao.sh" "$CACHE/venv/openbao" "$STATE/openbao"
    "$HERE/start-mariadb.sh" "$STATE/mariadb"
} > "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
cat "$ENV_FILE"
echo "vault testbed ready in $(( $(date +%s) - started ))s (env: $ENV_FILE)" >&2
