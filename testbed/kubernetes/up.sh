#!/bin/bash
# The kubernetes provider's backend on loopback: a real kube-apiserver and kube-controller-manager
# (1.20.2, built once from Debian's source package) on etcd 3.4 (Debian's etcd-server).
# Idempotent: installs what it needs with apt-get, builds the binaries into $BERTH_CACHE/kubernetes/bin
# unless they are there (4-6 min once), starts etcd + apiserver + controller-manager unless they are
# already healthy, then writes $BERTH_CACHE/testbed/kubernetes.env (KEY=value lines, which `make test`
# loads and the provider's integration tests read) and prints it. Stop it with testbed/kubernetes/down.sh.
# The kubeconfig goes in BERTH_TEST_KUBECONFIG (not KUBECONFIG), so a developer's own cluster is never
# the one tests talk to.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${BERTH_CACHE:-$HOME/.cache/berth}
BUILD=$CACHE/kubernetes
STATE=$CACHE/testbed/kubernetes
ENV_FILE=$CACHE/testbed/kubernetes.env
API_PORT=${API_PORT:-16443}
export API_PORT
mkdir -p "$STATE" "$CACHE/testbed"
started=$(date +%s)

missing=()
for tool in etcd:etcd-server curl:curl openssl:openssl setsid:util-linux; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-cache show etcd-server >/dev/null 2>&1 || apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$HERE/build-kube-apiserver.sh" "$BUILD" >&2

healthy() {
  [ -s "$STATE/kubeconfig" ] && [ -s "$STATE/kcm.pid" ] && kill -0 "$(cat "$STATE/kcm.pid")" 2>/dev/null \
    && curl -skf -H "Authorization: Bearer test-token" "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1
}
if healthy; then
  echo "kube-apiserver already running on 127.0.0.1:$API_PORT" >&2
else
  "$HERE/stop-apiserver.sh" "$STATE" >&2
  "$HERE/start-apiserver.sh" "$BUILD/bin" "$STATE" >&2
fi

{
  echo "BERTH_TEST_KUBECONFIG=$STATE/kubeconfig"
} > "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
cat "$ENV_FILE"
echo "kubernetes testbed ready in $(( $(date +%s) - started ))s (env: $ENV_FILE)" >&2
