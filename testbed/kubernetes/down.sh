#!/bin/bash
# Stops what testbed/kubernetes/up.sh started (by its pid files only; nothing else is touched) and
# removes kubernetes.env. etcd's data stays in $BERTH_CACHE/testbed/kubernetes/etcd for the next start.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${BERTH_CACHE:-$HOME/.cache/berth}
"$HERE/stop-apiserver.sh" "$CACHE/testbed/kubernetes"
rm -f "$CACHE/testbed/kubernetes.env"
echo "stopped kube-apiserver, controller-manager and etcd"
