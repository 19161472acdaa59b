#!/usr/bin/env bash
# make demo: deploy the demo stack (stacks/demo.yaml), show what exists, and prove a second
# run has nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH=${BERTH:-berth}
# The demo's secrets are encrypted with this passphrase unless you set your own.
export BERTH_PASSPHRASE=${BERTH_PASSPHRASE:-berth-demo}

echo "==> berth stack up demo"
"$BERTH" stack up demo --yes
echo
echo "==> berth stack output demo"
"$BERTH" stack output demo
echo
echo "==> the rendered files"
ls -l .demo/demo
echo "--- .demo/demo/lms.env.yml"
cat .demo/demo/lms.env.yml
echo
echo "==> berth stack preview demo --expect-no-changes"
"$BERTH" stack preview demo --expect-no-changes
echo
echo "Done. Remove it with: make clean-demo"
