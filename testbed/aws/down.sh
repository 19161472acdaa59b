#!/bin/bash
# Stops the moto server that testbed/aws/up.sh started (by its pid file only; nothing else is
# touched) and removes aws.env. moto keeps everything in memory: nothing is left behind.
set -uo pipefail
CACHE=${BERTH_CACHE:-$HOME/.cache/berth}
PIDFILE=$CACHE/testbed/aws/moto/moto.pid
if [ -s "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && { echo "moto (pid $pid) did not stop; killing it" >&2; kill -9 "$pid"; }
    fi
    rm -f "$PIDFILE"
    echo "stopped moto"
fi
rm -f "$CACHE/testbed/aws.env"
