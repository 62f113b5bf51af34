#!/usr/bin/env bash
# pipeline.sh measures the pipeline's own overhead: the real render-coordinator
# with stub workers that do no media work (real bus.Step workers on the real
# consumers; their Work writes placeholder objects where the services write
# theirs), so create → ready minus the workers' busy time is what NATS, the
# coordinator, the database and the blob store cost. For each shape and level
# it keeps N videos in flight (a closed loop) until max(MIN_VIDEOS, FACTOR × N) are
# ready, RUNS times on a fresh stack, and prints Markdown tables (medians over
# the runs): overhead p50/p99, job pickup per step, the coordinator's events/s,
# videos/s, events and SQL statements per video, and where the time goes (each
# coordinator turn, each worker's pickup and hand-off). The load average
# before and after and the method are printed with them. With REAL=1 it then
# renders real videos of the demo song on `backbeat dev` and reports the
# overhead around each worker's busy time. cmd/backbeat/internal/pipebench
# does the work.
#
# Shapes: dev-sqlite (one process, embedded NATS, SQLite, a local blob folder:
# `backbeat dev`), dev-postgres (the same on a fresh Postgres database), prod
# (nats-server from the shipped deployments/nats/nats.conf and accounts.conf,
# one node, provisioned with `backbeat provision`; the render-coordinator
# binary as its own process and NATS user on a fresh Postgres database; a
# fresh MinIO bucket; each stub as its service's NATS user).
#
#   make install-deps services-start
#   scripts/bench/pipeline.sh                  # all shapes, 1/10/100/1000 in flight, 3 runs, real media
#   QUICK=1 scripts/bench/pipeline.sh          # under a minute: 1 and 10 in flight (8 and 10 videos), 1 run, no real media
#   SHAPES=prod LEVELS=1,100 RUNS=5 REAL=0 scripts/bench/pipeline.sh
#   OUT=pipeline.md scripts/bench/pipeline.sh  # also write the report to a file
#   EXTRA='-coordinator-concurrency 16 -worker-concurrency 32' scripts/bench/pipeline.sh
#
# Databases, buckets, temporary directories and processes are removed on
# exit, ^C included; the run stops, cleaning up, after PIPELINE_TIMEOUT
# seconds (default 3600; QUICK: 120).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.cache/bin:$PATH"

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	RUNS=${RUNS:-1} LEVELS=${LEVELS:-1,10} MIN_VIDEOS=${MIN_VIDEOS:-8} FACTOR=${FACTOR:-1} REAL=${REAL:-0}
	PIPELINE_TIMEOUT=${PIPELINE_TIMEOUT:-120}
else
	RUNS=${RUNS:-3} LEVELS=${LEVELS:-1,10,100,1000} MIN_VIDEOS=${MIN_VIDEOS:-40} FACTOR=${FACTOR:-2} REAL=${REAL:-1}
	PIPELINE_TIMEOUT=${PIPELINE_TIMEOUT:-3600}
fi
SHAPES=${SHAPES:-dev-sqlite,dev-postgres,prod}
OUT=${OUT:-}
EXTRA=${EXTRA:-}

log() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'pipeline.sh: %s\n' "$*" >&2
	exit 1
}
for tool in go psql curl; do
	command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh)"
done
[[ $REAL == 0 ]] || command -v ffmpeg >/dev/null || die "ffmpeg is missing for REAL=1 (scripts/install-deps.sh)"
[[ -x .cache/bin/nats-server ]] || die "nats-server is missing: scripts/install-deps.sh"
eval "$(scripts/services.sh env)"
: "${TEST_DATABASE_URL:?}" "${TEST_S3_ENDPOINT:?}"
psql "$TEST_DATABASE_URL" -qtAc 'SELECT 1' >/dev/null 2>&1 || die "Postgres is not up: make services-start"
curl -fsS "http://$TEST_S3_ENDPOINT/minio/health/live" >/dev/null || die "MinIO is not up: make services-start"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-pipeline.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

log "building render-coordinator and the harness"
go build -C services/render-coordinator -o "$WORK/render-coordinator" ./cmd/render-coordinator
go build -C cmd/backbeat -o "$WORK/pipebench" ./internal/pipebench

log "shapes $SHAPES, in flight $LEVELS, $RUNS run(s), real media: $REAL (timeout ${PIPELINE_TIMEOUT}s)"
real=false
[[ $REAL == 0 ]] || real=true
args=(-root "$ROOT" -bin "$WORK" -tmp "$WORK" -shapes "$SHAPES" -levels "$LEVELS" -runs "$RUNS"
	-min-videos "$MIN_VIDEOS" -factor "$FACTOR" -real="$real")
[[ -z $OUT ]] || args+=(-out "$OUT")
# In the foreground: ^C reaches the harness, which stops what it started
# (nats-server, the coordinator: their own process groups) and drops the
# databases and buckets; -deadline ends the run the same way.
# shellcheck disable=SC2086 # EXTRA is a list of flags
"$WORK/pipebench" "${args[@]}" -deadline "${PIPELINE_TIMEOUT}s" $EXTRA
