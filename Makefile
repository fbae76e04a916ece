# Streamwatch — build, test and run the suite on one machine.
# `make demo` runs the whole suite on the embedded stack and replays the real
# access log; `make test` runs every module's tests (unit, integration and the
# end-to-end test, with real Redis and ClickHouse started by the tests).

SHELL   := /usr/bin/env bash
GO      ?= go
BIN     ?= $(CURDIR)/bin
SERVICES := collector aggregator detector notifier query
# Every module of the workspace (go.work), as package patterns.
MODULES  = $(shell $(GO) list -f '{{.Dir}}/...' -m)

.PHONY: all build dashboard dashboard-check test test-short test-race lint fuzz vulncheck faults bench demo up clean

all: build

build: dashboard
	@mkdir -p $(BIN)
	@for s in $(SERVICES); do (cd services/$$s && $(GO) build -o $(BIN)/$$s ./cmd/$$s) || exit 1; done
	cd devstack && $(GO) build -o $(BIN)/streamwatch-dev ./cmd/streamwatch-dev

# The dashboard's static assets, built from web/dashboard with the versions in
# its package-lock.json into services/query/internal/dashboard/dist (embedded
# by the query binary; committed so that Go builds need no Node).
dashboard:
	cd web/dashboard && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

# Rebuilds the dashboard and fails if the committed assets differ.
dashboard-check: dashboard
	git diff --exit-code --stat -- services/query/internal/dashboard/dist

test:
	$(GO) test -count=1 -timeout 25m $(MODULES)

test-short:
	$(GO) test -short -count=1 $(MODULES)

test-race:
	$(GO) test -race -count=1 -timeout 40m $(MODULES)

lint:
	@out=$$(gofmt -l pkg services devstack); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(MODULES)

# Every fuzz test briefly (FUZZTIME each, default 10s); failing inputs land in
# the package's testdata/fuzz and then run with every `go test`.
fuzz:
	bash scripts/fuzz.sh $(or $(FUZZTIME),10s)

# govulncheck over every module (needs vuln.go.dev or GOVULNDB=file://...).
vulncheck:
	bash scripts/govulncheck.sh

# The fault suite at full size (kill -9 of every service, broker restart,
# 30 s ClickHouse and Redis outages, two instances with one killed) under
# load; prints the scenario table. `make test` runs it at CI size.
faults:
	@report=$$(mktemp); cd devstack && FAULTS_EVENTS=$${FAULTS_EVENTS:-10000} FAULTS_RATE=$${FAULTS_RATE:-500} \
	  FAULTS_OUTAGE=$${FAULTS_OUTAGE:-30s} FAULTS_REPORT=$$report $(GO) test -count=1 -timeout 60m ./faultstest; \
	  s=$$?; cat $$report; rm -f $$report; exit $$s

# The end-to-end benchmark: writes bench/results/<date>-<host>.{md,json,png}.
bench:
	cd devstack && $(GO) run ./cmd/streamwatch-bench $(BENCH_FLAGS)

# The embedded stack: broker (in process), Redis and ClickHouse (Debian
# packages, installed when missing), the five services; data under .data/.
up: build
	$(BIN)/streamwatch-dev up -bin $(BIN) -data $(CURDIR)/.data

demo: build
	$(BIN)/streamwatch-dev demo -bin $(BIN) -data $(CURDIR)/.data -log $(CURDIR)/testdata/apache_logs

clean:
	rm -rf $(BIN)
