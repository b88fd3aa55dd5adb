# sqlwarden — the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
# Go from /usr/local/go when the shell has not put it on PATH.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
BIN := bin/sqlwarden
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD := -ldflags "-X main.version=$(VERSION)"
# Privileged tests (BPF, cgroups, netns) skip without root unless this is 1.
export SQLWARDEN_REQUIRE_PRIVILEGED ?= 0

.PHONY: all build deps deps-test generate check-generate test test-unit test-e2e fuzz bench soak demo clean

all: build

# Every group of scripts/install-deps.sh; each target below installs only its own.
deps:
	@bash scripts/install-deps.sh all

build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/sqlwarden

# Rebuild the eBPF objects and their Go bindings (committed) with clang.
generate:
	@bash scripts/install-deps.sh build
	cd redirect && $(GO) generate ./...

# The committed bpf2go output must be what the C sources build to.
check-generate:
	@cd redirect && $(GO) generate ./...
	@if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- redirect/; then \
	  echo "redirect/: the bpf2go output differs from bpf/*.c; commit the regenerated files:"; \
	  git diff --stat -- redirect/; exit 1; fi

# Every test: unit, fuzz seeds, end to end against the private MariaDB and real clients.
test: deps-test build check-generate
	@bash scripts/mariadb.sh start
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 14m -p 2 ./...

test-unit:
	$(GO) test -count=1 ./pkg/... ./redirect/...

test-e2e: deps-test build
	@bash scripts/mariadb.sh start
	$(GO) test -count=1 -timeout 14m ./test/...

# Run each fuzz target for FUZZTIME and write docs/fuzz.md (the seed corpora
# run in `make test`). FUZZ_ONLY=regexp picks targets.
FUZZTIME ?= 20s
fuzz:
	@bash scripts/mariadb.sh start
	@FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# Each figure the median of BENCH_RUNS (3) runs; rewrites only the generated
# regions of docs/bench.md. BENCH_QUICK=1 checks the script in seconds.
bench: build
	@bash scripts/mariadb.sh start
	@bash scripts/bench.sh

deps-test:
	@bash scripts/install-deps.sh demo build test

# A steady mixed agent workload for SOAK_TIME, sampled; writes docs/soak.md,
# docs/soak.png and docs/soak.csv. Not part of `make test`.
SOAK_TIME ?= 10m
soak: build
	@bash scripts/mariadb.sh start
	@SOAK_TIME=$(SOAK_TIME) bash scripts/soak.sh

# Only what the demo needs (MariaDB server and client; the eBPF objects are
# committed), then the demo; says how long each part took.
demo:
	@t0=$$(date +%s.%N); bash scripts/install-deps.sh demo; \
	t1=$$(date +%s.%N); $(MAKE) --no-print-directory build; \
	t2=$$(date +%s.%N); bash scripts/demo.sh; \
	t3=$$(date +%s.%N); \
	awk -v a=$$t0 -v b=$$t1 -v c=$$t2 -v d=$$t3 'BEGIN { printf "\nmake demo: %.1fs (install %.1fs, build %.1fs, demo %.1fs)\n", d-a, b-a, c-b, d-c }'

clean:
	rm -rf bin
