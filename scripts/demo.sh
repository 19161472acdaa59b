#!/usr/bin/env bash
# make demo: Open edX on the local testbed. Starts (installing on first use) moto, OpenBao with
# MariaDB and a real kube-apiserver; deploys the testbed's network and cluster stacks, then the
# `local` edxapp stack (stacks/local.yaml) against them; shows what exists; proves that a second
# plan has nothing to do. A stand-in kubelet (berth-fake-kubelet) plays the nodes the testbed's
# API server lacks, so migrations complete and Deployments roll out through the real controllers.
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH=${BERTH:-berth}
KUBELET=${KUBELET:-berth-fake-kubelet}
CACHE=${BERTH_CACHE:-$HOME/.cache/berth}
# The demo's secrets are encrypted with this passphrase unless you set your own.
export BERTH_PASSPHRASE=${BERTH_PASSPHRASE:-berth-demo}
export NO_COLOR=${NO_COLOR:-}

# The testbed's endpoints: AWS_ENDPOINT_URL, VAULT_ADDR/VAULT_TOKEN, the kubeconfig.
set -a
# shellcheck disable=SC1091
. "$CACHE/testbed/all.env"
set +a
export KUBECONFIG=$BERTH_TEST_KUBECONFIG
NAMESPACE=sandbox-openedx

"$KUBELET" "$NAMESPACE" 2>"$CACHE/testbed/fake-kubelet.log" &
kubelet=$!
trap 'kill $kubelet 2>/dev/null || true' EXIT

step() { printf '\n==> %s\n' "$*"; }

# --refresh: the testbed keeps its data in memory, so after a restart a second demo finds what
# is gone and creates it again.
step "berth stack up network.local   (VPC and subnets in moto)"
"$BERTH" stack up network.local --yes --refresh
step "berth stack up cluster.local   (namespace, operators' CRDs, IAM OIDC provider, Vault kubernetes auth)"
"$BERTH" stack up cluster.local --yes --refresh
step "berth stack up local   (Open edX: RDS, Redis, buckets, IAM, Vault, migrations, LMS and Studio)"
"$BERTH" stack up local --yes --refresh

step "berth stack output local"
"$BERTH" stack output local

step "what exists"
"$BERTH" state list local --json | python3 -c '
import collections, json, sys
resources = json.load(sys.stdin)["resources"]
by_type = collections.Counter(r["type"] for r in resources if r["custom"])
width = max(len(t) for t in by_type)
for ty, n in sorted(by_type.items()):
    print(f"  {ty:<{width}}  {n}")
components = len(resources) - sum(by_type.values())
print(f"  {sum(by_type.values())} resources and {components} components in state/local.json")'

step "berth stack preview local --expect-no-changes"
"$BERTH" stack preview local --expect-no-changes

cat <<DONE

Done. Open edX runs in namespace $NAMESPACE of the testbed's API server (KUBECONFIG=$KUBECONFIG).
Try:  $BERTH stack preview local --config edxapp.image.digest=sha256:$(printf 'ab%.0s' {1..32})
Remove it all with: make clean-demo
DONE
