# ferry — the commands a developer and CI need. `make test` is what CI runs.
GO      ?= go
BIN     ?= bin/ferry
VERSION ?= $(shell git describe --always --dirty 2>/dev/null)
PKGS    := ./...

.PHONY: all build test fmt-check vet fuzz demo bench clean

all: build

build:
	$(GO) build -trimpath $(if $(VERSION),-ldflags "-X main.version=$(VERSION)") -o $(BIN) ./cmd/ferry

## test: formatting, vet, and every test (unit, end-to-end, fuzz seed corpora) under the race detector,
## then the tests that compare timings (files built with `!race`) without it, where the timings mean something
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 60m $(PKGS)
	$(GO) test -count=1 -timeout 20m -run '^TestInspectLinearInHostileHeads$$' ./archive/

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## fuzz: every fuzz target in turn, FUZZTIME each (the seed corpora alone run with `make test`)
FUZZTIME ?= 30s
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "$$t ($$(dirname $$f))"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$(dirname $$f); \
		done; \
	done

## demo: the main job on embedded registries (no Docker, no set-up)
demo: build
	$(GO) run ./fixtures/cmd/ferry-demo -ferry $(BIN)

## bench: ferry's export/import/copy, serve and a delta round trip beside the floors and crane, on local registries (BENCH_FLAGS=-quick: a short run)
## The report is printed and kept in BENCH_OUT: docs/bench/COMMIT.md (COMMIT as `git describe --always --dirty` names it), .bench/ for -quick runs.
CRANE ?= bin/crane
BENCH_OUT ?= $(if $(findstring -quick,$(BENCH_FLAGS)),.bench/$(or $(VERSION),unknown)-quick.md,docs/bench/$(or $(VERSION),unknown).md)
bench: build
	$(GO) build -trimpath -o $(CRANE) github.com/google/go-containerregistry/cmd/crane
	$(GO) run ./fixtures/cmd/ferry-bench -ferry $(BIN) -crane $(CRANE) -out $(BENCH_OUT) $(BENCH_FLAGS)

clean:
	rm -rf bin .bench
