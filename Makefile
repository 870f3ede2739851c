# ferry — the commands a developer and CI need. `make test` is what CI runs.
GO      ?= go
BIN     ?= bin/ferry
VERSION ?= $(shell git describe --always --dirty 2>/dev/null)
PKGS    := ./...

.PHONY: all build test fmt-check vet unit fuzz-seed demo bench clean

all: build

build:
	$(GO) build -trimpath $(if $(VERSION),-ldflags "-X main.version=$(VERSION)") -o $(BIN) ./cmd/ferry

## test: formatting, vet, and every test (unit, end-to-end, fuzz seed corpora) under the race detector
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## demo: the main job on embedded registries (no Docker, no set-up)
demo: build
	$(GO) run ./fixtures/cmd/ferry-demo -ferry $(BIN)

## bench: export/import figures on generated bundles against local registries
bench: build
	$(GO) run ./fixtures/cmd/ferry-bench -ferry $(BIN)

clean:
	rm -rf bin .bench
