#!/usr/bin/env bash
# smoke.sh runs Backbeat in its production shape, every service its own
# process, and renders two videos through them end to end:
#
#   nats-server (JetStream, own store dir, the shipped accounts.conf: every
#   service its own NATS user; `backbeat provision` as admin first)
#                                            Postgres: a fresh database
#   MinIO: a fresh bucket                    cdn, render-coordinator, api,
#   audio, gpu-renderer ×2 (pools gpu, cpu), thumbnail
#
# It creates two users with the api's admin endpoint (bundle pro renders on
# the gpu pool, bundle free on the cpu pool), submits a generated song with
# `backbeat submit --wait`, fetches the MP4 and thumbnails from the cdn process,
# checks them with ffprobe, checks /healthz, /readyz and /metrics of every
# process and that every service logged JSON lines with the video ids.
#
#   scripts/smoke.sh          # or: make smoke
#
# Everything listens on 127.0.0.1 on ports the kernel picks (port 0; each
# process logs the address it got). State lives in a `mktemp -d` directory,
# removed on success (SMOKE_KEEP=1 keeps it); the database and the bucket are
# dropped on exit. The run after the build is under a hard timeout
# (SMOKE_TIMEOUT, default 300 s); every process started is stopped on exit.
# Needs root only because scripts/services.sh does; needs curl and ffprobe.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.cache/bin:$PATH"

SMOKE_TIMEOUT="${SMOKE_TIMEOUT:-300}"
# READY_TIMEOUT bounds the wait for one process's /readyz, in seconds.
READY_TIMEOUT="${READY_TIMEOUT:-60}"
# RENDER_TIMEOUT bounds `backbeat submit --wait`, in seconds.
RENDER_TIMEOUT="${RENDER_TIMEOUT:-200}"
ADMIN_KEY="smoke-admin-$RANDOM$RANDOM"

log() { printf '==> %s\n' "$*" >&2; }

# prepare runs before the timed part: tools and binaries (cached after the
# first run, which builds for minutes).
prepare() {
	local tool
	for tool in curl ffprobe ffmpeg psql; do
		command -v "$tool" >/dev/null || {
			echo "smoke: $tool missing (scripts/install-deps.sh smoke installs them)" >&2
			exit 1
		}
	done
	if ! command -v nats-server >/dev/null; then
		scripts/install-deps.sh smoke
	fi
	log "make build"
	make --no-print-directory build >/dev/null
}

# ---------------------------------------------------------------- results

PASSED=0
FAILED=()

pass() {
	PASSED=$((PASSED + 1))
	printf '  ok    %s\n' "$*" >&2
}

fail() {
	FAILED+=("$*")
	printf '  FAIL  %s\n' "$*" >&2
}

# check NAME CMD... records CMD's success as one result.
check() {
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name"; fi
}

# die records a failure that stops the run; the EXIT trap reports and cleans up.
die() {
	fail "$*"
	exit 1
}

# ---------------------------------------------------------------- processes

DIR=""
NAMES=()
declare -A PID ADDR EXIT_RC
declare -A SUBMIT_PID
DB_NAME=""
DB_ADMIN_URL=""
BUCKET=""

# spawn NAME CMD... starts CMD in the background with stdout and stderr in
# $DIR/NAME.log.
spawn() {
	local name=$1
	shift
	"$@" >"$DIR/$name.log" 2>&1 </dev/null &
	PID[$name]=$!
	NAMES+=("$name")
}

alive() { kill -0 "${PID[$1]}" 2>/dev/null; }

# nats_user BINARY is the NATS user of a service (deployments/nats/accounts.conf).
nats_user() {
	case $1 in
	render-coordinator) echo coordinator ;;
	gpu-renderer) echo renderer ;;
	*) echo "$1" ;;
	esac
}

# nats_password USER is USER's password, from the NATS_PASSWORD_<USER>
# variables the server read.
nats_password() {
	local var="NATS_PASSWORD_${1^^}"
	printf '%s\n' "${!var}"
}

# start_service NAME BINARY [VAR=VALUE...] starts a service binary with the
# shared settings, its own NATS user, HTTP address (port 0) and WORKER_NAME.
start_service() {
	local name=$1 bin=$2 user
	shift 2
	user="$(nats_user "$bin")"
	spawn "$name" env \
		BACKBEAT_NATS_URL="$NATS_URL" \
		BACKBEAT_NATS_USER="$user" \
		BACKBEAT_NATS_PASSWORD="$(nats_password "$user")" \
		BACKBEAT_BLOB_URL="$BLOB_URL" \
		BACKBEAT_HTTP_ADDR=127.0.0.1:0 \
		BACKBEAT_LOG_LEVEL=info \
		BACKBEAT_WORKER_NAME="$name" \
		TMPDIR="$DIR/tmp" \
		"$@" "bin/$bin"
}

# wait_log NAME REGEX prints the last capture group of the first match of
# REGEX in NAME's log, waiting until it appears or the process dies.
wait_log() {
	local name=$1 re=$2 i line
	for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
		line="$(grep -oE -m1 "$re" "$DIR/$name.log" 2>/dev/null | head -n1 || true)"
		if [[ -n $line && $line =~ $re ]]; then
			printf '%s\n' "${BASH_REMATCH[-1]}"
			return 0
		fi
		alive "$name" || return 1
		sleep 0.2
	done
	return 1
}

# wait_ready NAME finds the address NAME bound and waits for its /readyz.
wait_ready() {
	local name=$1 addr i
	# boot.Process.Serve logs "started", gpu-renderer "gpu-renderer started",
	# both with the address the listener got.
	addr="$(wait_log "$name" '"msg":"(gpu-renderer )?started".*"addr":"(127\.0\.0\.1:[0-9]+)"')" ||
		die "$name did not start (see $DIR/$name.log)"
	ADDR[$name]=$addr
	for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
		if curl -fsS -o /dev/null --max-time 2 "http://$addr/readyz" 2>/dev/null; then
			pass "$name ready on $addr"
			return
		fi
		alive "$name" || die "$name exited before /readyz answered (see $DIR/$name.log)"
		sleep 0.2
	done
	die "$name: /readyz not 200 within ${READY_TIMEOUT}s: $(curl -sS --max-time 2 "http://$addr/readyz" 2>&1 | head -c 300)"
}

# stop NAME... sends SIGTERM to each process (graceful shutdown), waits up to
# 10 s, then sends SIGKILL to what is left and reaps them all.
stop() {
	local name i left
	for name in "$@"; do
		kill -TERM "${PID[$name]}" 2>/dev/null || true
	done
	for ((i = 0; i < 50; i++)); do
		left=0
		for name in "$@"; do
			if alive "$name"; then left=1; fi
		done
		((left)) || break
		sleep 0.2
	done
	for name in "$@"; do
		if alive "$name"; then
			log "$name did not stop within 10s; killing it"
			kill -KILL "${PID[$name]}" 2>/dev/null || true
		fi
		EXIT_RC[$name]=0
		wait "${PID[$name]}" 2>/dev/null || EXIT_RC[$name]=$?
	done
}

# stop_all stops the services, then nats-server, so the services drain
# their NATS connections against a live server.
stop_all() {
	local name services=()
	for name in "${NAMES[@]}"; do
		[[ $name == nats ]] || services+=("$name")
	done
	((${#services[@]} == 0)) || stop "${services[@]}"
	[[ -z ${PID[nats]:-} ]] || stop nats
	# A graceful shutdown ends with status 0; 143 is SIGTERM unhandled, 137
	# the SIGKILL above.
	for name in "${services[@]}"; do
		check "$name exited 0 on SIGTERM (got ${EXIT_RC[$name]})" [ "${EXIT_RC[$name]}" = 0 ]
	done
}

# s3 METHOD PATH [CURL ARGS...] calls MinIO's S3 API signed with SigV4.
s3() {
	local method=$1 path=$2
	shift 2
	curl -fsS --max-time 10 -X "$method" --aws-sigv4 "aws:amz:us-east-1:s3" \
		--user "$TEST_S3_ACCESS_KEY:$TEST_S3_SECRET_KEY" "$@" "http://$TEST_S3_ENDPOINT/$path"
}

drop_bucket() {
	local key
	# Keys are validated ids and fixed names: no XML escaping to undo.
	for key in $(s3 GET "$BUCKET?list-type=2" 2>/dev/null | grep -oE '<Key>[^<]+</Key>' | sed -E 's/<\/?Key>//g'); do
		s3 DELETE "$BUCKET/$key" >/dev/null || true
	done
	s3 DELETE "$BUCKET" >/dev/null 2>&1 || log "could not remove bucket $BUCKET"
}

on_exit() {
	local rc=$? name
	trap - EXIT INT TERM
	((rc == 0)) || ((${#FAILED[@]} > 0)) || FAILED+=("aborted: interrupted, timed out or a command failed (exit $rc)")
	if ((${#NAMES[@]} > 0)); then
		log "stopping ${#NAMES[@]} processes"
		stop_all
	fi
	if ((${#FAILED[@]} > 0)) && [[ -n $DIR ]]; then
		for name in "${NAMES[@]}"; do
			printf '\n----- tail of %s.log -----\n' "$name" >&2
			tail -n 25 "$DIR/$name.log" >&2 || true
		done
		for name in submit-pro submit-free; do
			[[ -f $DIR/$name.out ]] || continue
			printf '\n----- %s output -----\n' "$name" >&2
			tail -n 15 "$DIR/$name.out" >&2 || true
		done
	fi
	if [[ -n $DB_NAME ]]; then
		psql "$DB_ADMIN_URL" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 ||
			log "could not drop database $DB_NAME"
	fi
	[[ -z $BUCKET ]] || drop_bucket
	if [[ -n $DIR ]]; then
		if ((${#FAILED[@]} > 0)) || [[ -n ${SMOKE_KEEP:-} ]]; then
			log "logs and state kept in $DIR"
		else
			rm -rf "$DIR"
		fi
	fi
	printf 'smoke: %d passed, %d failed\n' "$PASSED" "${#FAILED[@]}"
	if ((${#FAILED[@]} > 0)); then
		printf 'failed: %s\n' "${FAILED[@]}" >&2
		exit 1
	fi
	exit 0
}

# ---------------------------------------------------------------- the run

start_infra() {
	log "Postgres and MinIO (scripts/services.sh start)"
	scripts/services.sh start 2>&1 | sed 's/^/    /' >&2
	eval "$(scripts/services.sh env)"
	local suffix
	suffix="$(date +%s)$RANDOM"
	DB_ADMIN_URL=$TEST_DATABASE_URL
	DB_NAME="smoke_$suffix"
	psql "$DB_ADMIN_URL" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $DB_NAME" >/dev/null ||
		die "create database $DB_NAME"
	local base=${TEST_DATABASE_URL%%\?*} query=""
	[[ $TEST_DATABASE_URL != *\?* ]] || query="?${TEST_DATABASE_URL#*\?}"
	DATABASE_URL="${base%/*}/$DB_NAME$query"
	BUCKET="smoke-$suffix"
	# blob.Open creates the bucket on first use.
	BLOB_URL="s3://$TEST_S3_ACCESS_KEY:$TEST_S3_SECRET_KEY@$TEST_S3_ENDPOINT/$BUCKET?secure=false"
	pass "database $DB_NAME, bucket $BUCKET"

	log "nats-server with the shipped accounts.conf"
	mkdir -p "$DIR/nats"
	local user
	for user in coordinator api audio renderer cdn thumbnail admin sys; do
		export "NATS_PASSWORD_${user^^}=smoke-$user-$RANDOM$RANDOM"
	done
	# One node: the shipped users and permissions, without the cluster block
	# of nats.conf (scripts/chaos.sh runs that one).
	# (include paths are relative to the including file)
	cp deployments/nats/accounts.conf "$DIR/accounts.conf"
	cat >"$DIR/nats.conf" <<-CONF
		listen: 127.0.0.1:-1
		jetstream { store_dir: "$DIR/nats" }
		include ./accounts.conf
	CONF
	spawn nats nats-server -c "$DIR/nats.conf"
	local port
	port="$(wait_log nats 'Listening for client connections on 127\.0\.0\.1:([0-9]+)')" || die "nats-server did not start"
	NATS_URL="nats://127.0.0.1:$port"
	pass "nats-server on $NATS_URL"
}

# provision checks that a service refuses to start without the topology,
# naming what is missing, then creates it with `backbeat provision` as admin.
provision() {
	log "backbeat provision"
	start_service early-audio audio
	local i
	for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
		alive early-audio || break
		sleep 0.2
	done
	wait "${PID[early-audio]}" 2>/dev/null && fail "audio started without a topology" ||
		check "audio refuses to start before provisioning, naming what is missing" \
			grep -q 'missing.*consumer JOBS/audio.*backbeat provision' "$DIR/early-audio.log"
	local keep=() n
	for n in "${NAMES[@]}"; do [[ $n == early-audio ]] || keep+=("$n"); done
	NAMES=("${keep[@]}")
	BACKBEAT_NATS_URL="$NATS_URL" BACKBEAT_NATS_USER=admin BACKBEAT_NATS_PASSWORD="$(nats_password admin)" \
		bin/backbeat provision >"$DIR/provision.out" 2>&1 || die "backbeat provision: $(tail -n 3 "$DIR/provision.out")"
	check "backbeat provision created the topology" grep -q '^created  *consumer JOBS/render-gpu-high$' "$DIR/provision.out"
	BACKBEAT_NATS_URL="$NATS_URL" BACKBEAT_NATS_USER=audio BACKBEAT_NATS_PASSWORD="$(nats_password audio)" \
		timeout 60 bin/backbeat provision >"$DIR/provision-audio.out" 2>&1 &&
		fail "backbeat provision as a service user succeeded" ||
		pass "backbeat provision as a service user (audio) is refused"
}

# no_passwords: no log or output of this run holds a NATS password.
no_passwords() {
	local user pw
	for user in coordinator api audio renderer cdn thumbnail admin; do
		pw="$(nats_password "$user")"
		! grep -rqF -- "$pw" "$DIR"/*.log "$DIR"/*.out || return 1
	done
}

start_services() {
	log "services"
	mkdir -p "$DIR/tmp" "$DIR/edge-cache"
	# The cdn first: the coordinator builds public URLs from its address.
	start_service cdn cdn BACKBEAT_CDN_CACHE_DIR="$DIR/edge-cache" BACKBEAT_CDN_CACHE_MAX_MB=256
	# The api before the coordinator: both migrate the database at start-up,
	# and store.Migrate takes no lock, so two processes migrating a fresh
	# database at once can fail one of them (duplicate key on
	# schema_migrations_pkey). SMOKE_CONCURRENT_MIGRATE=1 starts them together.
	start_service api api BACKBEAT_DATABASE_URL="$DATABASE_URL" BACKBEAT_API_ADMIN_KEY="$ADMIN_KEY"
	wait_ready cdn
	[[ -n ${SMOKE_CONCURRENT_MIGRATE:-} ]] || wait_ready api
	start_service render-coordinator render-coordinator BACKBEAT_DATABASE_URL="$DATABASE_URL" \
		BACKBEAT_EDGE_BASE_URL="http://${ADDR[cdn]}" BACKBEAT_STALL_TIMEOUT=2m
	start_service audio audio
	start_service renderer-gpu gpu-renderer BACKBEAT_RENDER_POOL=gpu
	start_service renderer-cpu gpu-renderer BACKBEAT_RENDER_POOL=cpu
	start_service thumbnail thumbnail
	local name
	for name in api render-coordinator audio renderer-gpu renderer-cpu thumbnail; do
		[[ -n ${ADDR[$name]:-} ]] || wait_ready "$name"
	done
}

# create_user ID BUNDLE prints a new API key for a new user, or the answer
# of the api on stderr.
create_user() {
	local out key
	out="$(curl -sS --max-time 10 -X POST -H "Authorization: Bearer $ADMIN_KEY" \
		-H 'Content-Type: application/json' \
		-d "{\"id\":\"$1\",\"balance\":20,\"bundle\":\"$2\"}" \
		-w '\nHTTP %{http_code}' "http://${ADDR[api]}/v1/admin/users" 2>&1)" || true
	# The api indents its JSON: "api_key": "…".
	key="$(grep -oE '"api_key": *"[^"]+"' <<<"$out" | cut -d'"' -f4 || true)"
	if [[ -z $key || $out != *"HTTP 201" ]]; then
		printf 'POST /v1/admin/users %s: %s\n' "$1" "$(tr -s '\n ' ' ' <<<"$out")" >&2
		return 1
	fi
	printf '%s\n' "$key"
}

# submit NAME KEY VIDEO_ID runs `backbeat submit --wait` in the background.
submit() {
	local name=$1 key=$2 vid=$3
	BACKBEAT_API_URL="http://${ADDR[api]}" BACKBEAT_API_KEY="$key" \
		timeout "$RENDER_TIMEOUT" bin/backbeat submit "$DIR/song.wav" --start 2 --end 6 \
		--format square --template spectrum --title Smoke --artist "$name" --video-id "$vid" --wait \
		>"$DIR/$name.out" 2>&1 </dev/null &
	SUBMIT_PID[$name]=$!
}

# url_of NAME LABEL prints the URL `backbeat submit` printed after LABEL.
url_of() { sed -nE "s|^$2: +(http[^ ]+)$|\1|p" "$DIR/$1.out" | head -n1; }

# probe FILE prints "codec_type=codec_name" lines and the video size.
probe_streams() {
	ffprobe -v error -show_entries stream=codec_type,codec_name,width,height -of default=nw=1 "$1"
}

# check_video NAME VIDEO_ID fetches the MP4 and thumbnails from the cdn.
check_video() {
	local name=$1 vid=$2 url thumb sq info
	url="$(url_of "$name" 'video')"
	check "$name: video URL is the run's public key on the cdn process" grep -qE "^http://${ADDR[cdn]}/videos/$vid/r[0-9a-f]{24}/video\.mp4\$" <<<"$url"
	if curl -fsS --max-time 30 -o "$DIR/$vid.mp4" "$url"; then
		info="$(probe_streams "$DIR/$vid.mp4" 2>&1 || true)"
		check "$name: MP4 has an h264 video stream" grep -q '^codec_name=h264$' <<<"$info"
		check "$name: MP4 has an aac audio stream" grep -q '^codec_name=aac$' <<<"$info"
		check "$name: MP4 is 1080x1080 (square)" grep -qE '^width=1080 height=1080$' <<<"$(paste -sd' ' < <(grep -E '^(width|height)=' <<<"$info"))"
	else
		fail "$name: fetch $url"
	fi
	thumb="$(url_of "$name" 'thumbnail')"
	sq="$(url_of "$name" 'square thumbnail')"
	check "$name: thumbnail served as JPEG" fetch_jpeg "$thumb" "$DIR/$vid.jpg"
	check "$name: square thumbnail served as JPEG" fetch_jpeg "$sq" "$DIR/$vid-square.jpg"
}

fetch_jpeg() {
	[[ -n $1 ]] && curl -fsS --max-time 10 -o "$2" "$1" &&
		[[ "$(ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$2")" == mjpeg ]]
}

http_200() { curl -fsS -o /dev/null --max-time 5 "$1"; }
# metrics_ok URL: a Prometheus text page (read whole: grep -q would close the
# pipe early and fail curl under pipefail).
metrics_ok() {
	local body
	body="$(curl -fsS --max-time 5 "$1")" && grep -q '^# TYPE ' <<<"$body"
}

# json_log_has NAME STRING: NAME's log has a JSON line containing STRING.
json_log_has() { grep -F -- "$2" "$DIR/$1.log" | grep -q '^{.*}$'; }

run_videos() {
	log "demo song, users, two videos (pro → gpu pool, free → cpu pool)"
	scripts/demo-song.sh "$DIR/song.wav" 8 >/dev/null || die "demo-song.sh"
	local pro_key free_key
	pro_key="$(create_user smoke-pro pro)" && [[ -n $pro_key ]] || die "POST /v1/admin/users (pro)"
	free_key="$(create_user smoke-free free)" && [[ -n $free_key ]] || die "POST /v1/admin/users (free)"
	pass "users smoke-pro and smoke-free created with the admin key"
	VID_PRO="smoke-pro-$RANDOM"
	VID_FREE="smoke-free-$RANDOM"
	local t0=$SECONDS
	submit submit-pro "$pro_key" "$VID_PRO"
	submit submit-free "$free_key" "$VID_FREE"
	local name rc
	for name in submit-pro submit-free; do
		rc=0
		wait "${SUBMIT_PID[$name]}" || rc=$?
		if ((rc == 0)); then
			pass "$name: backbeat submit --wait: ready ($((SECONDS - t0))s)"
		else
			fail "$name: backbeat submit --wait exited $rc: $(tail -n 3 "$DIR/$name.out" | tr '\n' ' ')"
		fi
	done
	check_video submit-pro "$VID_PRO"
	check_video submit-free "$VID_FREE"
}

check_processes() {
	log "every process: alive, /healthz, /readyz, /metrics, JSON logs with video_id"
	check "nats-server still running" alive nats
	local name vid
	check "no log holds a NATS password" no_passwords
	for name in "${NAMES[@]}"; do
		[[ $name != nats ]] || continue
		check "$name still running" alive "$name"
		check "$name /healthz" http_200 "http://${ADDR[$name]}/healthz"
		check "$name /readyz" http_200 "http://${ADDR[$name]}/readyz"
		check "$name /metrics" metrics_ok "http://${ADDR[$name]}/metrics"
		case $name in
		renderer-gpu) vid=$VID_PRO ;;
		renderer-cpu) vid=$VID_FREE ;;
		*) vid=$VID_PRO ;;
		esac
		check "$name log has JSON lines with video_id $vid" json_log_has "$name" "\"video_id\":\"$vid\""
	done
}

run() {
	trap on_exit EXIT
	trap 'log "interrupted or timed out"; exit 124' INT TERM
	DIR="$(mktemp -d "${TMPDIR:-/tmp}/backbeat-smoke.XXXXXX")"
	log "state in $DIR"
	start_infra
	provision
	start_services
	run_videos
	check_processes
}

case "${1:-}" in
--timed)
	run
	;;
"")
	prepare
	log "smoke run (timeout ${SMOKE_TIMEOUT}s)"
	# timeout signals its whole process group, so the services stop too,
	# and the EXIT trap of the timed part still cleans up.
	# timeout puts itself in its own process group, which the terminal's ^C
	# does not reach: forward INT and TERM to it.
	timeout -k 20 "$SMOKE_TIMEOUT" "$0" --timed &
	tpid=$!
	trap 'kill -TERM "$tpid" 2>/dev/null || true' INT TERM
	rc=0
	wait "$tpid" || rc=$?
	while kill -0 "$tpid" 2>/dev/null; do
		rc=0
		wait "$tpid" || rc=$?
	done
	((rc != 124)) || echo "smoke: timed out after ${SMOKE_TIMEOUT}s" >&2
	exit "$rc"
	;;
*)
	echo "usage: $0" >&2
	exit 2
	;;
esac
