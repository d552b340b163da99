# crumbs: make run (the whole pipeline on this host), make test (every test), make bench.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BIN := bin/crumbs
CONFIG ?= crumbs.yaml
# Test packages run one at a time: they share the kernel, ClickHouse and ports.
TESTFLAGS ?= -count=1 -timeout 30m -p 1

.PHONY: all build run test fuzz bench generate lint deps clean dist

all: build

deps: ## install and start what crumbs needs: clickhouse-server, tracefs
	@scripts/ensure-deps.sh

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/crumbs

run: deps build ## the whole pipeline in the foreground; Ctrl-C stops it
	$(BIN) up $(if $(wildcard $(CONFIG)),--config $(CONFIG))

test: deps ## every test, including the end-to-end ones (root, eBPF, ClickHouse); each fuzz target's seeds run as tests
	$(GO) vet ./...
	cd scripts/dist && $(GO) vet ./... && $(GO) test -count=1 ./...
	$(GO) test $(TESTFLAGS) ./...

# Every fuzz target of the tree (func FuzzX in a _test.go file), found anew each run, fuzzed for
# FUZZTIME each, one at a time. Seed corpora and the inputs that once failed are kept under
# each package's testdata/fuzz/FuzzX; a failing input is written there.
# FUZZTIME is a count of inputs, not a duration: with a duration, Go's fuzzing engine can give up
# with "context deadline exceeded" when its workers start slower than that on a loaded machine.
FUZZTIME ?= 5000x
fuzz: ## run every fuzz target for FUZZTIME (5000 inputs) each
	@set -eo pipefail; \
	grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's|^\(.*\)/[^/]*:func |\1 |' | sort -u | \
	while read -r pkg name; do \
		echo "fuzz: $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg" | sed '/^fuzz: elapsed/d' || exit 1; \
	done

# Release artefacts under dist/: static binaries for amd64 and arm64 (the BPF objects of both
# are built in), their deb and rpm packages (nfpm, from deploy/packaging/nfpm.yaml) and
# SHA256SUMS. scripts/dist is a module of its own: nfpm is a build tool, not part of crumbs.
DIST_ARCH ?= amd64,arm64
DIST_FORMATS ?= deb,rpm
dist: ## static binaries, deb and rpm packages into dist/
	cd scripts/dist && $(GO) run . -root ../.. -out dist -version $(VERSION) -arch $(DIST_ARCH) -formats $(DIST_FORMATS)

bench: deps build ## Go benchmarks and load runs; figures go to bench-results/
	scripts/bench.sh

generate: ## regenerate vmlinux.h, the bpf2go output (installs clang, bpftool, libbpf-dev) and the Avro codecs
	@scripts/ensure-deps.sh --generate
	scripts/gen-vmlinux.sh
	$(GO) generate ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	cd scripts/dist && $(GO) vet ./...

clean:
	rm -rf bin bench-results dist
