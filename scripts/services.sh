#!/usr/bin/env bash
# services.sh starts, stops and describes the real services the tests use:
# PostgreSQL 15 (the Debian cluster 15/main on 127.0.0.1:5432) and MinIO
# (127.0.0.1:9000, console 9001, data in ./.data/minio). No Docker.
#
#   scripts/services.sh start    # idempotent; run as root
#   scripts/services.sh stop
#   scripts/services.sh status
#   eval "$(scripts/services.sh env)"   # TEST_DATABASE_URL, TEST_S3_*
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/.data"
PATH="$ROOT/.cache/bin:$PATH"

PG_VERSION=15
PG_CLUSTER=main
PG_PORT=5432
PG_USER=backbeat
PG_PASSWORD=backbeat
PG_DB=backbeat_test

MINIO_ADDR=127.0.0.1:9000
MINIO_CONSOLE=127.0.0.1:9001
MINIO_USER=backbeat
MINIO_PASSWORD=backbeat-secret
MINIO_PID="$DATA/minio.pid"

log() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'services: %s\n' "$*" >&2
	exit 1
}

# http_ok HOST:PORT PATH succeeds when GET answers 200, using bash's /dev/tcp
# so it needs neither curl nor wget.
http_ok() {
	(
		host=${1%:*} port=${1##*:} status=""
		{ exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || exit 1
		printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$2" "$1" >&3
		IFS= read -r -t 5 status <&3 || true
		[[ $status == *" 200 "* ]]
	)
}

pg_sql() { runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qtAc "$1"; }

pg_running() { pg_lsclusters -h "$PG_VERSION" "$PG_CLUSTER" 2>/dev/null | awk '{print $4}' | grep -q online; }

start_postgres() {
	command -v pg_ctlcluster >/dev/null || die "PostgreSQL missing: run scripts/install-deps.sh test"
	if ! pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c {f = 1} END {exit !f}'; then
		log "creating PostgreSQL cluster $PG_VERSION/$PG_CLUSTER"
		pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" >/dev/null
	fi
	local conf="/etc/postgresql/$PG_VERSION/$PG_CLUSTER/postgresql.conf"
	if ! grep -Eq "^listen_addresses *= *'127.0.0.1'" "$conf" || ! grep -Eq "^port *= *$PG_PORT\b" "$conf"; then
		# pg_conftool writes 127.0.0.1 unquoted (Postgres then refuses to
		# start) or triple-quoted, so edit the file directly.
		sed -i -E '/^(listen_addresses|port)[[:space:]]*=/d' "$conf"
		printf "listen_addresses = '127.0.0.1'\nport = %s\n" "$PG_PORT" >>"$conf"
		if pg_running; then pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" restart; fi
	fi
	if pg_running; then
		log "PostgreSQL $PG_VERSION/$PG_CLUSTER already running"
	else
		log "starting PostgreSQL $PG_VERSION/$PG_CLUSTER"
		pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
	fi
	local i
	for ((i = 0; i < 60; i++)); do
		pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
		sleep 0.5
	done
	pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || die "PostgreSQL not ready on 127.0.0.1:$PG_PORT"

	if [[ $(pg_sql "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'") != 1 ]]; then
		log "creating role $PG_USER"
		pg_sql "CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
	fi
	if [[ $(pg_sql "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") != 1 ]]; then
		log "creating database $PG_DB"
		pg_sql "CREATE DATABASE $PG_DB OWNER $PG_USER"
	fi
}

minio_running() { http_ok "$MINIO_ADDR" /minio/health/live; }

# minio_dirs prints the data directory (the last argument) of every running
# `minio server`.
minio_dirs() {
	local p
	for p in $(pgrep -f 'minio server' || true); do
		tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | tail -n 1
	done
}

start_minio() {
	if minio_running; then
		# A MinIO left by a removed checkout still answers health checks but
		# fails every write: refuse it rather than reuse it.
		local dir
		while read -r dir; do
			[[ -z $dir || -d $dir ]] || die "the MinIO on $MINIO_ADDR serves $dir, which no longer exists (a removed checkout?): stop it (pkill -f 'minio server') and start again"
		done < <(minio_dirs)
		log "MinIO already running on $MINIO_ADDR (data: $(minio_dirs | tr '\n' ' '))"
		return
	fi
	command -v minio >/dev/null || die "minio missing: run scripts/install-deps.sh test"
	mkdir -p "$DATA/minio"
	log "starting MinIO on $MINIO_ADDR (console $MINIO_CONSOLE), logs in $DATA/minio.log"
	MINIO_ROOT_USER="$MINIO_USER" MINIO_ROOT_PASSWORD="$MINIO_PASSWORD" \
		MINIO_BROWSER_REDIRECT=off MINIO_UPDATE=off \
		setsid minio server --quiet --address "$MINIO_ADDR" --console-address "$MINIO_CONSOLE" \
		"$DATA/minio" >>"$DATA/minio.log" 2>&1 </dev/null &
	echo $! >"$MINIO_PID"
	local i
	for ((i = 0; i < 120; i++)); do
		minio_running && return
		kill -0 "$(cat "$MINIO_PID")" 2>/dev/null || die "MinIO exited; see $DATA/minio.log"
		sleep 0.5
	done
	die "MinIO did not answer /minio/health/live within 60s; see $DATA/minio.log"
}

stop_minio() {
	[[ -f $MINIO_PID ]] || {
		log "MinIO: no pid file, not started by this script"
		return
	}
	local pid
	pid="$(cat "$MINIO_PID")"
	if kill -0 "$pid" 2>/dev/null && grep -q minio "/proc/$pid/cmdline" 2>/dev/null; then
		log "stopping MinIO (pid $pid)"
		kill "$pid"
		local i
		for ((i = 0; i < 40; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
	fi
	rm -f "$MINIO_PID"
}

print_env() {
	cat <<EOF
export TEST_DATABASE_URL='postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable'
export TEST_S3_ENDPOINT='$MINIO_ADDR'
export TEST_S3_ACCESS_KEY='$MINIO_USER'
export TEST_S3_SECRET_KEY='$MINIO_PASSWORD'
EOF
}

status() {
	if pg_running; then echo "postgres: running on 127.0.0.1:$PG_PORT"; else echo "postgres: stopped"; fi
	if minio_running; then echo "minio: running on $MINIO_ADDR"; else echo "minio: stopped"; fi
}

case "${1:-}" in
start)
	start_postgres
	start_minio
	log "services up; eval \"\$($0 env)\" to use them"
	;;
stop)
	stop_minio
	if pg_running; then
		log "stopping PostgreSQL $PG_VERSION/$PG_CLUSTER"
		pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop
	fi
	;;
env) print_env ;;
status) status ;;
*)
	echo "usage: $0 start|stop|status|env" >&2
	exit 2
	;;
esac
