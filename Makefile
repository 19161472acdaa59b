# berth — the README's commands. Build output is cached outside the clone (override with
# CARGO_TARGET_DIR) so a second run on the same machine is fast; a cold run builds everything.
BERTH_CACHE ?= $(HOME)/.cache/berth
export BERTH_CACHE
CARGO_TARGET_DIR ?= $(BERTH_CACHE)/target
export CARGO_TARGET_DIR
# Each testbed/<backend>/up.sh installs (cached in $(BERTH_CACHE)) and starts one backend, if it is
# not already running, and writes the variables tests need to $(BERTH_CACHE)/testbed/<backend>.env.
TESTBED_ENV = $(BERTH_CACHE)/testbed/all.env
CARGO ?= cargo
BERTH := $(CARGO_TARGET_DIR)/debug/berth

.PHONY: all build test lint fmt demo bench clean-demo help testbed testbed-down

all: build

help:
	@echo "make test    lint, unit and integration tests (what CI runs)"
	@echo "make demo    start the testbed, deploy Open edX (stacks/local.yaml) on it, show the result"
	@echo "make bench   benchmarks: preview time/memory, state size, apply parallelism"

build:
	$(CARGO) build --workspace

# Formatting and lints first: they fail in seconds, the tests take minutes.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

testbed:
	@mkdir -p $(BERTH_CACHE)/testbed
	@for up in $$(ls testbed/*/up.sh 2>/dev/null); do echo "==> $$up"; $$up || exit 1; done
	@cat /dev/null $$(ls $(BERTH_CACHE)/testbed/*.env 2>/dev/null | grep -v '/all.env$$') > $(TESTBED_ENV)

testbed-down:
	@for down in $$(ls testbed/*/down.sh 2>/dev/null); do $$down; done

test: lint testbed
	set -a && . $(TESTBED_ENV) && set +a && $(CARGO) test --workspace --no-fail-fast
	$(CARGO) run -q -p berth-engine --example quickstart > /dev/null

fmt:
	$(CARGO) fmt --all

demo: build testbed
	BERTH=$(BERTH) KUBELET=$(CARGO_TARGET_DIR)/debug/berth-fake-kubelet ./scripts/demo.sh

clean-demo:
	set -a && . $(TESTBED_ENV) && set +a && export KUBECONFIG=$$BERTH_TEST_KUBECONFIG \
	  BERTH_PASSPHRASE=$${BERTH_PASSPHRASE:-berth-demo} && \
	  for stack in local cluster.local network.local; do $(BERTH) stack destroy $$stack --yes || exit 1; done

bench:
	$(CARGO) build --release -p berth-testkit
	$(CARGO_TARGET_DIR)/release/berth-bench
