#!/bin/bash
# Stops the OpenBao and MariaDB servers that testbed/vault/up.sh started (by their pid files only;
# nothing else is touched). MariaDB's data directory is kept; OpenBao's dev mode has none.
set -uo pipefail
CACHE=${BERTH_CACHE:-$HOME/.cache/berth}
STATE=$CACHE/testbed/vault
stop() { # NAME PIDFILE
    [ -s "$2" ] || return 0
    local pid; pid=$(cat "$2")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && { echo "$1 (pid $pid) did not stop; killing it" >&2; kill -9 "$pid"; }
    fi
    rm -f "$2"
    echo "stopped $1"
}
stop OpenBao "$STATE/openbao/openbao.pid"
stop "OpenBao (TLS)" "$STATE/openbao/openbao-tls.pid"
stop MariaDB "$STATE/mariadb/mariadb.pid"
rm -f "$CACHE/testbed/vault.env"
