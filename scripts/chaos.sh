#!/usr/bin/env bash
# chaos.sh runs Backbeat in its production shape and injects faults while
# videos are in flight (make chaos):
#
#   nats-server ×3 (the shipped deployments/nats/nats.conf and accounts.conf,
#   a JetStream cluster; `backbeat provision --replicas 3` as admin)
#   Postgres: a fresh database              MinIO: a fresh bucket
#   api, render-coordinator, audio, gpu-renderer ×2 (pools gpu, cpu), cdn,
#   thumbnail: every service its own process and NATS user, given all three
#   NATS URLs
#
# A baseline batch of videos without faults, then one batch per fault: the
# nats-server leading EVENTS and JOBS SIGKILLed and restarted, the gpu-pool
# renderer SIGKILLed mid-render, Postgres restarted, the coordinator stopped
# with SIGTERM and with SIGKILL. It checks every video became ready exactly
# once, balances and the ledger are exact, no notify webhook was sent twice
# and nothing is left in flight, and prints a report with the latency each
# fault added (cmd/backbeat/internal/chaos does the run).
#
#   scripts/chaos.sh [chaos flags]   # e.g. --batch 6 --keep
#
# Logs live in a `mktemp -d` directory, kept on failure (or with --keep); the
# database and the bucket are dropped and every process is stopped on exit,
# ^C included. The run after the build is under a hard timeout
# (CHAOS_TIMEOUT, default 540 s). Needs root, like scripts/services.sh (it
# restarts Postgres with pg_ctlcluster).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.cache/bin:$PATH"

CHAOS_TIMEOUT="${CHAOS_TIMEOUT:-540}"

log() { printf '==> %s\n' "$*" >&2; }

for tool in ffmpeg psql pg_ctlcluster; do
	command -v "$tool" >/dev/null || {
		echo "chaos: $tool missing (scripts/install-deps.sh chaos installs it)" >&2
		exit 1
	}
done
[[ -x .cache/bin/nats-server ]] || scripts/install-deps.sh chaos

log "make build"
make --no-print-directory build >/dev/null
BIN="$(mktemp -d "${TMPDIR:-/tmp}/backbeat-chaos-bin.XXXXXX")"
trap 'rm -rf "$BIN"' EXIT
(cd cmd/backbeat && go build -o "$BIN/chaos" ./internal/chaos)

log "Postgres and MinIO (scripts/services.sh start)"
scripts/services.sh start 2>&1 | sed 's/^/    /' >&2
eval "$(scripts/services.sh env)"

log "chaos run (timeout ${CHAOS_TIMEOUT}s)"
# The program stops every process it started on SIGINT or SIGTERM;
# timeout sends SIGTERM, then SIGKILL 30 s later. timeout runs the program in
# its own process group, out of reach of the terminal's ^C: forward it.
timeout -k 30 "$CHAOS_TIMEOUT" "$BIN/chaos" -root "$ROOT" "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
rc=0
wait "$pid" || rc=$?
while kill -0 "$pid" 2>/dev/null; do
	rc=0
	wait "$pid" || rc=$?
done
((rc != 124)) || echo "chaos: timed out after ${CHAOS_TIMEOUT}s" >&2
exit "$rc"
