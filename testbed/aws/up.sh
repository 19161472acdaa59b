#!/bin/bash
# The AWS provider's backend on loopback: moto 5.2.5 in server mode (patched for the Rust SDK).
# Idempotent: installs moto into a venv cached under $BERTH_CACHE, starts it unless it is already
# healthy, then writes $BERTH_CACHE/testbed/aws.env (KEY=value lines, which `make test` loads and
# the provider's integration tests read) and prints it. Stop it with testbed/aws/down.sh.
# AWS_EC2_METADATA_DISABLED keeps the SDK from ever dialling the EC2 metadata address.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${BERTH_CACHE:-$HOME/.cache/berth}
STATE=$CACHE/testbed/aws
mkdir -p "$STATE"
ENV_FILE=$CACHE/testbed/aws.env
started=$(date +%s)
"$HERE/start-moto.sh" "$CACHE/venv/moto" "$STATE/moto" > "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
cat "$ENV_FILE"
echo "aws testbed ready in $(( $(date +%s) - started ))s (env: $ENV_FILE)" >&2
