# Backbeat: one entry point for developers and CI. Every module is listed in
# go.work; loops over modules use `go list -m`, so a new module needs no edit here.
#
#   make run              install ffmpeg, make a demo song, render it end to end
#   make test             start Postgres + MinIO, go test -race every module
#   make sim SEEDS=N      the coordinator's simulation over N seeds (default 10000)
#   make smoke            every service its own process: two videos end to end
#   make chaos            3-node NATS cluster, every service its own process, faults injected
#   make lint             gofmt, go vet, staticcheck on every module
#   make generate         regenerate proto/ Go code with buf
#   make check-generated  fail if the committed generated code is stale
#   make build            binaries into ./bin
#   make install-deps     every target's tools (install-deps-TARGET: one target's)
#   make bench            run scripts/bench/*.sh

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
TOOLS := $(ROOT)/.cache/bin
export PATH := $(TOOLS):$(PATH)

# Main packages: the CLI and each service's cmd/<name>.
CMDS := $(patsubst %/,./%,$(dir $(wildcard cmd/backbeat/main.go))) $(patsubst %/,./%,$(sort $(dir $(wildcard services/*/cmd/*/main.go))))
DEMO_SONG := .data/demo.wav

# Each target installs only what it uses (scripts/install-deps.sh TARGET).
DEPS := go run test smoke chaos lint generate

.PHONY: help install-deps $(addprefix install-deps-,$(DEPS)) services-start services-stop run demo-song demo-cli test sim smoke chaos lint generate check-generated build bench clean

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

install-deps:
	scripts/install-deps.sh all

$(addprefix install-deps-,$(DEPS)): install-deps-%:
	scripts/install-deps.sh $*

services-start:
	scripts/services.sh start

services-stop:
	scripts/services.sh stop

$(DEMO_SONG): scripts/demo-song.sh | install-deps-run
	scripts/demo-song.sh $@ 40

demo-song: $(DEMO_SONG)

# run builds only the CLI: the demo needs no other binary, nor Postgres, MinIO
# or nats-server. Once ca-certificates is in (the go command needs it), apt
# installs ffmpeg and makes the song while Go downloads and compiles the CLI.
# DEMO_ARGS go to `backbeat demo`, e.g. "-http 127.0.0.1:0 -nats-port -1" when
# 8080 or 4222 is taken.
DEMO_ARGS ?=
run: install-deps-go
	@$(MAKE) --no-print-directory -j2 demo-song demo-cli
	bin/backbeat demo $(DEMO_ARGS) $(DEMO_SONG)

demo-cli:
	go build -trimpath -o bin/backbeat ./cmd/backbeat

test: install-deps-test services-start
	scripts/test-all.sh

SEEDS ?= 10000
# sim runs without -race (a seed costs ten times as much under it; the -race
# run of `make test` covers the handlers' data races on fewer seeds).
sim:
	cd services/render-coordinator && go test -count=1 -run 'TestSimulation$$' -timeout 60m -v -sim.seeds=$(SEEDS) .

# smoke builds bin/ itself and runs under its own timeout (SMOKE_TIMEOUT).
smoke: install-deps-smoke services-start
	scripts/smoke.sh

# chaos builds bin/ itself and runs under its own timeout (CHAOS_TIMEOUT).
chaos: install-deps-chaos services-start
	scripts/chaos.sh

lint: install-deps-lint
	scripts/lint.sh

generate: install-deps-generate
	cd proto && buf generate

check-generated: generate
	@if ! git diff --exit-code -- proto/ || [[ -n "$$(git status --porcelain --untracked-files=all -- proto/)" ]]; then \
		git status --short -- proto/; \
		echo "check-generated: proto/ differs from the committed code: run 'make generate' and commit" >&2; \
		exit 1; \
	fi
	@echo "check-generated: ok"

build:
	@mkdir -p bin
	go build -trimpath -o bin/ $(CMDS)
	@ls bin

bench:
	@shopt -s nullglob; scripts=(scripts/bench/*.sh); \
	if (( $${#scripts[@]} == 0 )); then echo "bench: no scripts in scripts/bench"; exit 0; fi; \
	for s in "$${scripts[@]}"; do echo "==> $$s"; bash "$$s"; done

clean:
	rm -rf bin .cache/test
