# pinlist — see README.md. Every target runs on a machine with Go; `test` and
# `lint` also need moto_server and cfn-lint, which check-tools installs into a
# cache when they are not on PATH (that needs python3 with venv, and PyPI).
SHELL := /bin/bash
GO ?= go
PKGS := ./...
BENCHTIME ?= 1x
TEST_TIMEOUT ?= 15m

.PHONY: test lint fmt vet bench bench-load bench-aws build check-tools cfn-lint
.PHONY: build-IngestFunction build-ApplyFunction build-UploadFunction build-RefreshFunction

## test: the whole suite, race detector on (needs moto_server and cfn-lint).
test: check-tools cfn-lint
	$(PY_TOOLS_PATH)$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

## check-tools: fail loudly when go is missing. When moto_server or cfn-lint is
## not on PATH, or python3 cannot import aws-sam-translator (cfn-lint brings it;
## infra/samtransform.py needs it), install moto[server] and cfn-lint once into
## a virtual environment in PY_TOOLS_VENV, which recipes then put first on PATH
## (PY_TOOLS_PATH; awstest finds moto_server there through PATH). Tools already
## on PATH are used as they are and nothing is installed. When python3, its
## venv module or the pip install fails, it says what is missing and how to
## install it, and fails. Tested by infra/maketools_test.go.
PY_TOOLS_VENV ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/pinlist/venv
PY_TOOLS_PACKAGES := 'moto[server]' cfn-lint
# The tools missing from PATH, computed once, when the first recipe asks.
PY_TOOLS_MISSING = $(eval PY_TOOLS_MISSING := $(shell for t in moto_server cfn-lint; do command -v $$t >/dev/null 2>&1 || printf '%s ' $$t; done; \
	python3 -c 'import samtranslator' >/dev/null 2>&1 || printf '%s' aws-sam-translator))$(PY_TOOLS_MISSING)
PY_TOOLS_PATH = $(if $(strip $(PY_TOOLS_MISSING)),PATH="$(PY_TOOLS_VENV)/bin:$$PATH"; )
PY_TOOLS_BY_HAND = or install them yourself: pip install $(PY_TOOLS_PACKAGES)

check-tools:
	@command -v $(GO) >/dev/null || { echo "missing: go (https://go.dev/dl/)" >&2; exit 1; }
	@set -uo pipefail; missing='$(strip $(PY_TOOLS_MISSING))'; venv='$(PY_TOOLS_VENV)'; \
	[ -n "$$missing" ] || exit 0; \
	have() { "$$venv/bin/python3" -c 'import samtranslator' >/dev/null 2>&1 && [ -x "$$venv/bin/moto_server" ] && [ -x "$$venv/bin/cfn-lint" ]; }; \
	have && exit 0; \
	echo "check-tools: not on PATH: $$missing; installing $(PY_TOOLS_PACKAGES) into $$venv (once; needs PyPI)" >&2; \
	command -v python3 >/dev/null || { echo "check-tools: missing: $$missing; python3, needed to install them into $$venv, is not on PATH: install Python 3 with its venv module (Debian/Ubuntu: sudo apt-get install python3 python3-venv; macOS: brew install python), $(PY_TOOLS_BY_HAND)" >&2; exit 1; }; \
	if [ -e "$$venv" ] && [ ! -f "$$venv/pyvenv.cfg" ]; then \
		echo "check-tools: $$venv exists and is not a virtual environment; move it away or set PY_TOOLS_VENV" >&2; exit 1; \
	fi; \
	if [ ! -x "$$venv/bin/pip" ]; then \
		mkdir -p "$$(dirname "$$venv")" && python3 -m venv "$$venv" \
		|| { echo "check-tools: missing: $$missing; python3 -m venv $$venv failed: install Python's venv module (Debian/Ubuntu: sudo apt-get install python3-venv), $(PY_TOOLS_BY_HAND)" >&2; exit 1; }; \
	fi; \
	"$$venv/bin/pip" install --disable-pip-version-check --quiet $(PY_TOOLS_PACKAGES) \
		|| { echo "check-tools: missing: $$missing; pip install $(PY_TOOLS_PACKAGES) into $$venv failed (it needs PyPI; see pip's message above); $(PY_TOOLS_BY_HAND)" >&2; exit 1; }; \
	have || { echo "check-tools: missing: $$missing; still not in $$venv/bin after pip install $(PY_TOOLS_PACKAGES); $(PY_TOOLS_BY_HAND)" >&2; exit 1; }; \
	echo "check-tools: installed moto_server and cfn-lint into $$venv/bin" >&2

## lint: gofmt check, go vet and cfn-lint.
lint: cfn-lint
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## cfn-lint: validate the SAM template (settings in .cfnlintrc.yaml).
cfn-lint: check-tools
	$(PY_TOOLS_PATH)cfn-lint template.yaml

## run: the whole connector locally (pinlist serve): ingest on 127.0.0.1:8080,
## the Pinterest simulator on 127.0.0.1:8081, queue and tokens in ./.pinlist.
## Built into ./bin first, so Ctrl-C reaches pinlist itself. Flags: make run ARGS='--workers 8'.
.PHONY: run
run:
	$(GO) build -o bin/pinlist ./cmd/pinlist
	./bin/pinlist serve $(ARGS)

## bench: the budget benchmark (bench-load), the AWS-shaped one (bench-aws),
## then the Go benchmarks.
bench: bench-load bench-aws
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## bench-aws: the AWS-shaped benchmark (issue 12): the real ingest, apply and
## upload handlers on moto's SQS, DynamoDB and DynamoDB Streams, driven like
## Lambda's event source mappings as template.yaml configures them (several
## virtual stream shards), into the simulator with Pinterest's write budget;
## writes docs/BENCHMARKS.md's "Load (AWS shape)" section. About 7 minutes:
## moto, not the design, sets its pace. More flags in AWS_FLAGS.
AWS_FLAGS ?= --profiles 100
bench-aws: check-tools
	$(GO) build -o bin/pinlist ./cmd/pinlist
	$(PY_TOOLS_PATH)./bin/pinlist load --shape aws --doc docs/BENCHMARKS.md $(AWS_FLAGS)

## bench-load: the budget benchmark (issues 11 and 12), two runs. Each
## builds pinlist, starts pinlist sim with Pinterest's ads_write budget (400
## write calls a minute) and pinlist serve against it on LOAD_SIM_ADDR and
## LOAD_ADDR (PIDs kept), runs pinlist load's AEP-shaped traffic (10 profiles a
## request, unchanged memberships re-sent, retries and replays) against them,
## stops both by PID and writes its docs/BENCHMARKS.md section with each goal
## MET or MISSED:
##  - "Load": 5,000 records a call as deployed; warm-up, as fast as posted
##    (200,000 profiles, over two minutes, so that the one flush round the
##    connector lags by does not set the sustained rate), 1,000 flips/s, a
##    second pass. More flags in LOAD_FLAGS.
##  - "Load at saturation": this machine cannot offer the 33,333 flips/s that
##    400 calls of 5,000 records carry, so the budget is saturated by
##    LOAD_SAT_RECORDS records a call instead (same budget, same traffic).
##    80,000 profiles: a backlog of about five minutes, so that the phase's
##    last round (one partial call per list and operation) does not set the
##    rate. More flags in LOAD_SAT_FLAGS.
## Both runs take about 12 minutes together.
LOAD_ADDR ?= 127.0.0.1:18080
LOAD_SIM_ADDR ?= 127.0.0.1:18081
LOAD_BUDGET ?= 400
LOAD_FLAGS ?= --profiles 200000 --warmup-profiles 2000 --fixed-duration 30s
LOAD_SAT_RECORDS ?= 50
LOAD_SAT_FLAGS ?= --profiles 80000 --warmup-profiles 2000 --fixed-duration 0 --second-pass=false
bench-load:
	@set -euo pipefail; dir=$$(mktemp -d); sim=; serve=; \
	stop() { for pid in $$serve $$sim; do kill $$pid 2>/dev/null || true; wait $$pid 2>/dev/null || true; done; sim=; serve=; }; \
	trap 'stop; rm -rf "$$dir"' EXIT; \
	$(GO) build -o "$$dir/pinlist" ./cmd/pinlist; \
	run() { \
		records=$$1; section=$$2; flags=$$3; data="$$dir/data-$$records"; mkdir -m 700 "$$data"; \
		"$$dir/pinlist" sim --addr $(LOAD_SIM_ADDR) --write-limit $(LOAD_BUDGET) >"$$dir/sim.log" 2>&1 & sim=$$!; \
		"$$dir/pinlist" load --sim-url http://$(LOAD_SIM_ADDR) --provision-token "$$data/token.json"; \
		PINLIST_INGEST_TOKEN=bench-load-token PINLIST_MAX_RECORDS_PER_REQUEST=$$records "$$dir/pinlist" serve --addr $(LOAD_ADDR) \
			--data-dir "$$data" --pinterest-url http://$(LOAD_SIM_ADDR)/v5 >"$$dir/serve.log" 2>&1 & serve=$$!; \
		PINLIST_INGEST_TOKEN=bench-load-token "$$dir/pinlist" load --ingest-url http://$(LOAD_ADDR) \
			--sim-url http://$(LOAD_SIM_ADDR) --serve-pid $$serve --budget $(LOAD_BUDGET) --max-records $$records \
			--doc docs/BENCHMARKS.md --doc-section "$$section" --doc-command "$$4" $$flags \
			|| { echo "pinlist load failed; the last lines of serve's log:" >&2; tail -n 20 "$$dir/serve.log" >&2; exit 1; }; \
		stop; \
	}; \
	run 5000 "Load" "$(LOAD_FLAGS)" 'make bench-load LOAD_FLAGS="$(LOAD_FLAGS)"'; \
	run $(LOAD_SAT_RECORDS) "Load at saturation" "$(LOAD_SAT_FLAGS)" 'make bench-load LOAD_SAT_RECORDS=$(LOAD_SAT_RECORDS) LOAD_SAT_FLAGS="$(LOAD_SAT_FLAGS)"'

## screenshot: refresh docs/status.png, the README's picture of the status
## page: runs the status page's browser test (a real stack, examples/profiles.json,
## headless Chromium) with its wide-screen screenshot pointed at docs/status.png.
## Needs Chromium (Debian/Ubuntu: sudo apt-get install chromium).
.PHONY: screenshot
screenshot:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null \
		|| { echo "screenshot: Chromium is not on PATH (Debian/Ubuntu: sudo apt-get install chromium)" >&2; exit 1; }
	PINLIST_STATUS_SCREENSHOT="$(CURDIR)/docs/status.png" $(GO) test -count=1 -run '^TestStatusPageInChromium$$' -v ./internal/local/

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
## everything it started (infra/invoke). Needs Go and moto_server (installed by
## check-tools when missing); the first run also needs the Go module proxy to
## build aws-lambda-rie (then cached).
.PHONY: invoke-ingest invoke-apply invoke-upload invoke-refresh
invoke-ingest invoke-apply invoke-upload invoke-refresh: check-tools
	@$(PY_TOOLS_PATH)$(GO) run ./infra/invoke $(if $(EVENT),-event $(EVENT)) $(@:invoke-%=%)
