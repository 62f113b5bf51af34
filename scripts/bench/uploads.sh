#!/usr/bin/env bash
# uploads.sh measures the API's peak memory while it takes many concurrent
# chunked uploads (no Content-Length), against the real parts: MinIO and
# Postgres from scripts/services.sh and a standalone nats-server built from
# the module cache. It builds the API (services/api/cmd/api) from the working
# tree ("head") and, when BASE names a commit, from that commit too ("base",
# from `git archive`, so no worktree is registered), and runs them in turn,
# RUNS times each.
#
# Each run starts a fresh nats-server, Postgres schema and API process,
# creates a user through the admin endpoint, sends CONCURRENCY uploads of
# SIZE_MB MiB at once with `curl -T FILE -H 'Transfer-Encoding: chunked'`
# (FRAMING=length: with Content-Length), and reads the API's VmHWM (peak
# resident set) from /proc/PID/status once they are all answered. It prints
# one line per run and the medians. The objects, schemas and temporary files
# are removed on exit.
#
#   make install-deps services-start
#   BASE=39f9a74 scripts/bench/uploads.sh          # before and after
#   RUNS=5 CONCURRENCY=20 SIZE_MB=50 scripts/bench/uploads.sh
#   FRAMING=length BASE=39f9a74 scripts/bench/uploads.sh   # with Content-Length
#
# Mind the memory of the machine: an API that buffers uploads needs
# CONCURRENCY x SIZE_MB MiB and more (5 GiB with the defaults, at BASE=39f9a74).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
RUNS=${RUNS:-3}
CONCURRENCY=${CONCURRENCY:-50}
SIZE_MB=${SIZE_MB:-100}
BASE=${BASE:-}
FRAMING=${FRAMING:-chunked}
case $FRAMING in
chunked) FRAMING_HEADER=(-H 'Transfer-Encoding: chunked') ;;
length) FRAMING_HEADER=() ;;
*)
	echo "uploads.sh: FRAMING must be chunked or length, not $FRAMING" >&2
	exit 1
	;;
esac

log() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'uploads.sh: %s\n' "$*" >&2
	exit 1
}
for tool in curl jq psql python3 go; do
	command -v "$tool" >/dev/null || die "$tool is missing"
done
eval "$(scripts/services.sh env)"
export PGOPTIONS="-c client_min_messages=warning"
: "${TEST_DATABASE_URL:?}" "${TEST_S3_ENDPOINT:?}" "${TEST_S3_ACCESS_KEY:?}" "${TEST_S3_SECRET_KEY:?}"
psql "$TEST_DATABASE_URL" -qtAc 'SELECT 1' >/dev/null || die "Postgres is not up: make services-start"
curl -fsS "http://$TEST_S3_ENDPOINT/minio/health/live" >/dev/null || die "MinIO is not up: make services-start"

WORK="$(mktemp -d /tmp/bench-uploads.XXXXXX)"
SUFFIX="$(printf '%04x%04x' "$RANDOM" "$RANDOM")"
BUCKET="bench-uploads-$SUFFIX"
SCHEMAS=()
PIDS=()
s3() { curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" -u "$TEST_S3_ACCESS_KEY:$TEST_S3_SECRET_KEY" "$@"; }
cleanup() {
	local pid schema i
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for schema in "${SCHEMAS[@]}"; do psql "$TEST_DATABASE_URL" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true; done
	for ((i = 0; i < CONCURRENCY; i++)); do
		s3 -X DELETE "http://$TEST_S3_ENDPOINT/$BUCKET/uploads/bench$i/audio.wav" >/dev/null 2>&1 || true
	done
	s3 -X DELETE "http://$TEST_S3_ENDPOINT/$BUCKET" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

# wait_port PORT waits until something listens on 127.0.0.1:PORT.
wait_port() {
	local i
	for ((i = 0; i < 100; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	die "nothing listens on 127.0.0.1:$1"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

log "building the API from the working tree, and nats-server"
(cd services/api && go build -o "$WORK/api-head" ./cmd/api && go build -o "$WORK/nats-server" github.com/nats-io/nats-server/v2)
BINARIES=(head)
if [[ -n $BASE ]]; then
	log "building the API at $BASE"
	mkdir "$WORK/base"
	git archive "$BASE" | tar -x -C "$WORK/base"
	(cd "$WORK/base/services/api" && go build -o "$WORK/api-base" ./cmd/api)
	BINARIES=(base head)
fi

BODY="$WORK/body.wav"
{
	printf 'RIFF\x00\x00\x00\x00WAVEfmt '
	head -c $((SIZE_MB * 1024 * 1024 - 16)) /dev/urandom
} >"$BODY"

# run BINARY prints "hwm_kib wall_s ok_count" for one run.
run() {
	local bin=$1 nats_port api_port schema pid npid key start end ok i hwm
	nats_port=$(free_port)
	api_port=$(free_port)
	schema="bench_uploads_${SUFFIX}_$RANDOM"
	SCHEMAS+=("$schema")
	psql "$TEST_DATABASE_URL" -qc "CREATE SCHEMA $schema" >/dev/null
	mkdir -p "$WORK/nats-$schema"
	"$WORK/nats-server" -a 127.0.0.1 -p "$nats_port" -js -sd "$WORK/nats-$schema" >"$WORK/nats.log" 2>&1 &
	npid=$!
	PIDS+=("$npid")
	wait_port "$nats_port"
	BACKBEAT_NATS_URL="nats://127.0.0.1:$nats_port" \
		BACKBEAT_DATABASE_URL="$TEST_DATABASE_URL&search_path=$schema" \
		BACKBEAT_BLOB_URL="s3://$TEST_S3_ACCESS_KEY:$TEST_S3_SECRET_KEY@$TEST_S3_ENDPOINT/$BUCKET?secure=false" \
		BACKBEAT_HTTP_ADDR="127.0.0.1:$api_port" \
		BACKBEAT_API_ADMIN_KEY="bench-admin-key-0123456789" \
		BACKBEAT_LOG_LEVEL=warn \
		"$WORK/api-$bin" >"$WORK/api.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	for ((i = 0; i < 100; i++)); do
		curl -fsS "http://127.0.0.1:$api_port/readyz" >/dev/null 2>&1 && break
		sleep 0.2
	done
	curl -fsS "http://127.0.0.1:$api_port/readyz" >/dev/null || {
		cat "$WORK/api.log" >&2
		die "the API did not become ready"
	}
	key=$(curl -fsS -X POST -H "Authorization: Bearer bench-admin-key-0123456789" \
		-d '{"id":"bench","balance":0,"bundle":"free"}' "http://127.0.0.1:$api_port/v1/admin/users" | jq -r .api_key)
	start=$(date +%s.%N)
	for ((i = 0; i < CONCURRENCY; i++)); do
		curl -sS -o /dev/null -w '%{http_code}\n' -X POST -T "$BODY" \
			-H "Authorization: Bearer $key" "${FRAMING_HEADER[@]}" \
			"http://127.0.0.1:$api_port/v1/uploads?video_id=bench$i&kind=audio" >"$WORK/code.$i" 2>&1 &
	done
	wait $(jobs -p | grep -vx -e "$pid" -e "$npid")
	end=$(date +%s.%N)
	ok=$(cat "$WORK"/code.* | grep -cx 201 || true)
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
	kill "$pid" "$npid"
	wait "$pid" "$npid" 2>/dev/null || true
	PIDS=()
	rm -rf "$WORK/nats-$schema" "$WORK"/code.*
	psql "$TEST_DATABASE_URL" -qc "DROP SCHEMA $schema CASCADE" >/dev/null
	printf '%s %s %s\n' "$hwm" "$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}')" "$ok"
}

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

log "$CONCURRENCY concurrent uploads ($FRAMING) of $SIZE_MB MiB, $RUNS runs per binary, alternating"
printf '%-5s %4s %12s %8s %6s\n' binary run peak_rss_mib wall_s ok
declare -A HWMS WALLS
for ((r = 1; r <= RUNS; r++)); do
	for bin in "${BINARIES[@]}"; do
		run "$bin" >"$WORK/result"
		read -r hwm wall ok <"$WORK/result"
		printf '%-5s %4d %12d %8s %3s/%d\n' "$bin" "$r" $((hwm / 1024)) "$wall" "$ok" "$CONCURRENCY"
		HWMS[$bin]+="$hwm "
		WALLS[$bin]+="$wall "
	done
done
echo
printf '%-5s %19s %15s\n' binary median_peak_rss_mib median_wall_s
for bin in "${BINARIES[@]}"; do
	printf '%-5s %19.0f %15s\n' "$bin" \
		"$(tr ' ' '\n' <<<"${HWMS[$bin]}" | grep . | median | awk '{print $1 / 1024}')" \
		"$(tr ' ' '\n' <<<"${WALLS[$bin]}" | grep . | median)"
done
