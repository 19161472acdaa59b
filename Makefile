# berth — the README's commands. Build output is cached outside the clone (override with
# CARGO_TARGET_DIR) so a second run on the same machine is fast; a cold run builds everything.
CARGO_TARGET_DIR ?= $(HOME)/.cache/berth/target
export CARGO_TARGET_DIR
CARGO ?= cargo
BERTH := $(CARGO_TARGET_DIR)/debug/berth

.PHONY: all build test lint fmt demo bench clean-demo help

all: build

help:
	@echo "make test    lint, unit and integration tests (what CI runs)"
	@echo "make demo    deploy the demo stack and show the result"
	@echo "make bench   benchmarks: preview time/memory, state size, apply parallelism"

build:
	$(CARGO) build --workspace

# Formatting and lints first: they fail in seconds, the tests take minutes.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: lint
	$(CARGO) test --workspace
	$(CARGO) run -q -p berth-engine --example quickstart > /dev/null

fmt:
	$(CARGO) fmt --all

demo: build
	BERTH=$(BERTH) ./scripts/demo.sh

clean-demo:
	BERTH_PASSPHRASE=$${BERTH_PASSPHRASE:-berth-demo} $(BERTH) stack destroy demo --yes

bench:
	$(CARGO) build --release -p berth-testkit
	$(CARGO_TARGET_DIR)/release/berth-bench
