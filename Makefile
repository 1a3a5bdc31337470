# pinlist — see README.md. Every target runs on a machine with Go; `test` also
# needs moto_server and cfn-lint (pip install "moto[server]" cfn-lint).
SHELL := /bin/bash
GO ?= go
PKGS := ./...
BENCHTIME ?= 1x
TEST_TIMEOUT ?= 15m

.PHONY: test lint fmt vet bench bench-load build check-tools cfn-lint
.PHONY: build-IngestFunction build-ApplyFunction build-UploadFunction build-RefreshFunction

## test: the whole suite, race detector on (needs moto_server and cfn-lint).
test: check-tools cfn-lint
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

## check-tools: fail loudly when a tool the suite needs is missing.
check-tools:
	@command -v $(GO) >/dev/null || { echo "missing: go (https://go.dev/dl/)" >&2; exit 1; }
	@command -v moto_server >/dev/null || { echo 'missing: moto_server — install with: pip install "moto[server]"' >&2; exit 1; }
	@command -v cfn-lint >/dev/null || { echo 'missing: cfn-lint — install with: pip install cfn-lint' >&2; exit 1; }

## lint: gofmt check, go vet and cfn-lint.
lint: cfn-lint
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## cfn-lint: validate the SAM template (settings in .cfnlintrc.yaml).
cfn-lint:
	@command -v cfn-lint >/dev/null || { echo 'missing: cfn-lint — install with: pip install cfn-lint' >&2; exit 1; }
	cfn-lint template.yaml

## run: the whole connector locally (pinlist serve): ingest on 127.0.0.1:8080,
## the Pinterest simulator on 127.0.0.1:8081, queue and tokens in ./.pinlist.
## Built into ./bin first, so Ctrl-C reaches pinlist itself. Flags: make run ARGS='--workers 8'.
.PHONY: run
run:
	$(GO) build -o bin/pinlist ./cmd/pinlist
	./bin/pinlist serve $(ARGS)

## bench: the load benchmark, then the Go benchmarks.
bench: bench-load
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## bench-load: the load benchmark (issue 8): builds pinlist, starts pinlist sim
## and pinlist serve on LOAD_SIM_ADDR and LOAD_ADDR (PIDs kept), runs pinlist load
## against them, stops both by PID and writes docs/BENCHMARKS.md's Load section.
## More flags for pinlist load in LOAD_FLAGS (e.g. LOAD_FLAGS='--profiles 20000').
LOAD_ADDR ?= 127.0.0.1:18080
LOAD_SIM_ADDR ?= 127.0.0.1:18081
LOAD_FLAGS ?=
bench-load:
	@set -euo pipefail; dir=$$(mktemp -d); sim=; serve=; \
	trap 'for pid in $$serve $$sim; do kill $$pid 2>/dev/null || true; wait $$pid 2>/dev/null || true; done; rm -rf "$$dir"' EXIT; \
	$(GO) build -o "$$dir/pinlist" ./cmd/pinlist; \
	mkdir -m 700 "$$dir/data"; \
	"$$dir/pinlist" sim --addr $(LOAD_SIM_ADDR) >"$$dir/sim.log" 2>&1 & sim=$$!; \
	"$$dir/pinlist" load --sim-url http://$(LOAD_SIM_ADDR) --provision-token "$$dir/data/token.json"; \
	PINLIST_INGEST_TOKEN=bench-load-token "$$dir/pinlist" serve --addr $(LOAD_ADDR) --data-dir "$$dir/data" \
		--pinterest-url http://$(LOAD_SIM_ADDR)/v5 --write-rate 0 >"$$dir/serve.log" 2>&1 & serve=$$!; \
	PINLIST_INGEST_TOKEN=bench-load-token "$$dir/pinlist" load --ingest-url http://$(LOAD_ADDR) \
		--sim-url http://$(LOAD_SIM_ADDR) --serve-pid $$serve --doc docs/BENCHMARKS.md \
		--doc-command 'make bench-load$(if $(LOAD_FLAGS), LOAD_FLAGS="$(LOAD_FLAGS)")' $(LOAD_FLAGS) \
		|| { echo "pinlist load failed; the last lines of serve's log:" >&2; tail -n 20 "$$dir/serve.log" >&2; exit 1; }

## build: compile everything.
build:
	$(GO) build $(PKGS)

## build-IngestFunction, build-ApplyFunction, build-UploadFunction,
## build-RefreshFunction: what
## `sam build` runs for each function (template.yaml: BuildMethod: makefile).
## SAM sets ARTIFACTS_DIR; the Lambda runtime is provided.al2023 on arm64.
LAMBDA_GOBUILD = GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w'
LAMBDA_NEEDS_ARTIFACTS_DIR = @test -n "$(ARTIFACTS_DIR)" || { echo 'ARTIFACTS_DIR is not set (sam build sets it; by hand: make $@ ARTIFACTS_DIR=/some/dir)' >&2; exit 1; }

build-IngestFunction:
	$(LAMBDA_NEEDS_ARTIFACTS_DIR)
	$(LAMBDA_GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/ingest

build-ApplyFunction:
	$(LAMBDA_NEEDS_ARTIFACTS_DIR)
	$(LAMBDA_GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/apply

build-UploadFunction:
	$(LAMBDA_NEEDS_ARTIFACTS_DIR)
	$(LAMBDA_GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/upload

build-RefreshFunction:
	$(LAMBDA_NEEDS_ARTIFACTS_DIR)
	$(LAMBDA_GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/refresh

## invoke-ingest, invoke-apply, invoke-upload, invoke-refresh: build the function for the
## host and invoke it once under aws-lambda-rie (no Docker) with its sample
## event (EVENT=events/<file>.json picks another), against moto_server and the
## Pinterest simulator, with the queues, ledger table and secrets the stack
## would have (invoke-upload first records events/sqs-standard-batch.json in
## the ledger, so the stream event's rows are pending). Prints
## the response on stdout, progress and the function's log on stderr, and stops
## everything it started (infra/invoke). Needs Go and moto_server; the first
## run also needs the Go module proxy to build aws-lambda-rie (then cached).
.PHONY: invoke-ingest invoke-apply invoke-upload invoke-refresh
invoke-ingest invoke-apply invoke-upload invoke-refresh:
	@$(GO) run ./infra/invoke $(if $(EVENT),-event $(EVENT)) $(@:invoke-%=%)
