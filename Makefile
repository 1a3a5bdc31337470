# pinlist — see README.md. Every target runs on a machine with Go; `test` also
# needs moto_server and cfn-lint (pip install "moto[server]" cfn-lint).
SHELL := /bin/bash
GO ?= go
PKGS := ./...
BENCHTIME ?= 1x
TEST_TIMEOUT ?= 15m

.PHONY: test lint fmt vet bench build check-tools

## test: the whole suite, race detector on (needs moto_server and cfn-lint).
test: check-tools
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

## check-tools: fail loudly when a tool the suite needs is missing.
check-tools:
	@command -v $(GO) >/dev/null || { echo "missing: go (https://go.dev/dl/)" >&2; exit 1; }
	@command -v moto_server >/dev/null || { echo 'missing: moto_server — install with: pip install "moto[server]"' >&2; exit 1; }
	@command -v cfn-lint >/dev/null || { echo 'missing: cfn-lint — install with: pip install cfn-lint' >&2; exit 1; }

## lint: gofmt check and go vet.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## bench: the Go benchmarks.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## build: compile everything.
build:
	$(GO) build $(PKGS)
