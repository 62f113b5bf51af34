#!/usr/bin/env bash
# firstrun.sh measures `make run` on a fresh Debian 12 machine (issue 11): a
# root made by debootstrap (minbase bookworm, from the host's Debian mirror)
# with only Go (the host's GOROOT), make and git added, the repository cloned
# into it, empty Go caches and empty apt lists. It times `make run` in that
# chroot until the demo prints "verified with ffprobe", then stops it with ^C,
# and prints when each phase ended, in seconds from the start:
#
#   apt        scripts/install-deps.sh run: apt-get update, download, unpack
#              (ca-certificates and ffmpeg; everything, before issue 11)
#   song       scripts/demo-song.sh wrote .data/demo.wav
#   modules    the last module written to the module cache (download done)
#   cli        bin/backbeat written (since issue 11 the CLI builds while apt
#              works; before, `make build` wrote every binary, then `go run`
#              compiled the CLI once more)
#   stack      the demo printed "starting the dev stack"
#   frame      the first progress line with a rendered frame
#   video      the MP4 verified on the edge: the end of the first run
#
# One line per run, then the medians, the load average at each start, the CPU
# time make run used (a cgroup's; less sensitive than wall time to what else
# runs on the machine) and how much apt and the module proxy delivered.
#
#   FIRSTRUN=1 scripts/bench/firstrun.sh             # HEAD, one run (3–5 minutes)
#   FIRSTRUN=1 RUNS=3 scripts/bench/firstrun.sh
#   FIRSTRUN=1 REV=3ec7465 scripts/bench/firstrun.sh # another commit (e.g. before)
#
# `make bench` runs it only with FIRSTRUN=1: it takes minutes and downloads
# about 100 MB each run. It skips, with the reason, when not root or not on
# Debian. The fresh root is built once into FIRSTRUN_DIR (default
# /var/tmp/backbeat-firstrun/base; FIRSTRUN_REBASE=1 builds it anew), copied
# for each run and removed after it. The demo listens on ports the kernel
# picks (DEMO_ARGS), so it does not collide with a `backbeat dev` running here.
set -euo pipefail

skip() {
	echo "firstrun: skipped: $*"
	exit 0
}
[[ ${FIRSTRUN:-0} == 1 ]] || skip "set FIRSTRUN=1 to run it (minutes, ~100 MB of downloads a run)"
[[ $(id -u) -eq 0 ]] || skip "needs root (debootstrap, chroot, mount)"
[[ -r /etc/debian_version ]] || skip "needs a Debian host (debootstrap, its apt sources)"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUNS=${RUNS:-1}
REV=${REV:-HEAD}
DIR=${FIRSTRUN_DIR:-/var/tmp/backbeat-firstrun}
TIMEOUT=${FIRSTRUN_TIMEOUT:-1800}
GOROOT_HOST="$(go env GOROOT)"
SHA="$(git -C "$ROOT" rev-parse "$REV^{commit}")"
# The first Debian archive the host's apt uses (deb822 or one-line sources).
MIRROR=${MIRROR:-$(
	{
		awk '$1 == "URIs:" {print $2}' /etc/apt/sources.list.d/*.sources 2>/dev/null
		awk '$1 == "deb" {print ($2 ~ /^\[/ ? $3 : $2)}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
	} | grep -v security | head -1 || true
)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

log() { printf '==> %s\n' "$*" >&2; }

# ENV is the whole environment in the chroot: a fresh machine has none of
# this one's GOFLAGS or GOCACHE. What the network needs comes along: the
# proxies, and the CA bundle of SSL_CERT_FILE when the host sets one (a
# network that inspects TLS signs with a CA that Debian's bundle lacks).
ENV=(/usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb
	PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY GOPROXY GONOSUMDB GOSUMDB GOPRIVATE; do
	[[ -z ${!v:-} ]] || ENV+=("$v=${!v}")
done
HOST_CA=/usr/local/share/host-ca-bundle.crt
[[ ! -r ${SSL_CERT_FILE:-} ]] || ENV+=("SSL_CERT_FILE=$HOST_CA")

# in_root DIR CMD... runs CMD in the chroot DIR.
in_root() {
	local r=$1
	shift
	chroot "$r" "${ENV[@]}" "$@"
}

# kill_root DIR kills every process whose root is DIR and waits until none is
# left: nothing may run in a root that is about to be removed.
kill_root() {
	local p left
	for _ in $(seq 20); do
		left=0
		for p in /proc/[0-9]*; do
			if [[ $(readlink "$p/root" 2>/dev/null) == "$1" ]]; then
				kill -KILL "${p#/proc/}" 2>/dev/null || true
				left=1
			fi
		done
		((left)) || return 0
		sleep 0.5
	done
	echo "firstrun: processes still run in $1" >&2
	return 1
}

mount_root() {
	mount -t proc proc "$1/proc"
	mount -t sysfs sysfs "$1/sys"
}

# unmount_root DIR unmounts everything under DIR and fails if anything stays
# mounted, so that nothing mounted is ever removed with the root.
unmount_root() {
	local m
	for m in "$1/sys" "$1/proc"; do
		if mountpoint -q "$m"; then umount -l "$m"; fi
	done
	! findmnt -rno TARGET | grep -q "^$1/"
}

remove_root() {
	[[ -d $1 ]] || return 0
	kill_root "$1" && unmount_root "$1" || {
		echo "firstrun: $1 still has mounts or processes; not removing it" >&2
		return 1
	}
	rm -rf --one-file-system "$1"
}

# base builds the fresh machine once: Debian minbase, the host's apt sources
# and apt settings, Go, make and git, then empty apt lists and caches. Like
# Debian's container images it has a policy-rc.d that starts no daemon.
base() {
	local b="$DIR/base"
	if [[ -f $b/.complete && ${FIRSTRUN_REBASE:-0} != 1 ]]; then
		return
	fi
	remove_root "$b"
	command -v debootstrap >/dev/null || {
		log "apt-get install debootstrap"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
	}
	mkdir -p "$DIR"
	log "debootstrap --variant=minbase bookworm from $MIRROR (once)"
	debootstrap --variant=minbase bookworm "$b" "$MIRROR" >"$DIR/debootstrap.log" 2>&1 || {
		tail -20 "$DIR/debootstrap.log" >&2
		return 1
	}
	# The host's sources replace debootstrap's; of its settings, only those
	# that reach the archive (proxies, date checks) come along.
	rm -f "$b/etc/apt/sources.list"
	[[ ! -f /etc/apt/sources.list ]] || cp /etc/apt/sources.list "$b/etc/apt/sources.list"
	cp -a /etc/apt/sources.list.d/. "$b/etc/apt/sources.list.d/"
	local f
	for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
		if [[ -f $f ]] && grep -Eqi 'Acquire::([a-z]+::Proxy|Check-Valid-Until|Check-Date)' "$f"; then
			cp "$f" "$b${f}"
		fi
	done
	cp -a /etc/apt/trusted.gpg.d/. "$b/etc/apt/trusted.gpg.d/"
	[[ ! -d /etc/apt/keyrings ]] || cp -a /etc/apt/keyrings/. "$b/etc/apt/keyrings/"
	printf '#!/bin/sh\nexit 101\n' >"$b/usr/sbin/policy-rc.d"
	chmod 0755 "$b/usr/sbin/policy-rc.d"
	cp -a "$GOROOT_HOST" "$b/usr/local/go"
	cp /etc/resolv.conf "$b/etc/resolv.conf"
	mount_root "$b"
	in_root "$b" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make git >/dev/null' || {
		unmount_root "$b"
		return 1
	}
	unmount_root "$b"
	rm -rf "$b"/var/lib/apt/lists/* "$b"/var/cache/apt/*.bin "$b"/var/cache/apt/archives/*.deb
	touch "$b/.complete"
}

# at PATTERN prints the seconds at the first stamped line matching PATTERN.
at() { awk -v p="$1" '{t = $1; $1 = ""; sub(/^ /, "")} $0 ~ p {print t; exit}' "$LOG"; }

# one N: one measured run; prints its figures as one line.
one() {
	local n=$1 r="$DIR/run" pid t0 end status=ok
	remove_root "$r"
	cp -a "$DIR/base" "$r"
	cp /etc/resolv.conf "$r/etc/resolv.conf"
	[[ ! -r ${SSL_CERT_FILE:-} ]] || cp "$SSL_CERT_FILE" "$r$HOST_CA"
	git clone -q "$ROOT" "$r/root/backbeat"
	git -C "$r/root/backbeat" checkout -q "$SHA"
	mount_root "$r"
	LOG="$DIR/run-$n.log"
	: >"$LOG" # the wait below must not read the last run's lines
	local pkgs0 load
	pkgs0=$(in_root "$r" dpkg-query -W -f='.\n' | wc -l)
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	log "run $n: make run in a fresh root ($SHA, load $load)"
	local cg cpu=""
	cg=$(cpu_group "$n")
	t0=$EPOCHREALTIME
	# A new session: one signal reaches make, go and the demo; all in cg.
	setsid sh -c '[ -z "$1" ] || echo $$ >"$1/cgroup.procs"; shift; exec chroot "$@"' _ "$cg" "$r" "${ENV[@]}" sh -c 'cd /root/backbeat && exec make run DEMO_ARGS="-http 127.0.0.1:0 -nats-port -1"' \
		> >(while IFS= read -r line; do
			printf '%.2f %s\n' "$(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN {print a - b}')" "$line"
		done >"$LOG") 2>&1 &
	pid=$!
	end=$((SECONDS + TIMEOUT))
	until grep -q ' verified with ffprobe' "$LOG" 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			status="make run exited early"
			break
		fi
		if ((SECONDS > end)); then
			status="timeout after ${TIMEOUT}s"
			break
		fi
		sleep 0.5
	done
	kill -INT -- "-$pid" 2>/dev/null || true
	for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
	kill -KILL -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	kill_root "$r"
	sleep 0.5 # the stamping loop drains
	if [[ -n $cg ]]; then
		cpu=$(cpu_seconds "$cg")
		rmdir "$cg" 2>/dev/null || true
	fi

	local apt song cli stack frame video modules pkgs mods
	apt=$(at '^scripts/demo-song.sh')
	song=$(at '^[.]data/demo[.]wav$')
	cli=$(stat -c %.3Y "$r/root/backbeat/bin/backbeat" 2>/dev/null | awk -v b="$t0" 'NF {printf "%.2f", $1 - b}')
	stack=$(at '^starting the dev stack')
	frame=$(at 'frames [1-9][0-9]*/')
	video=$(at '^verified with ffprobe')
	# The newest file in the module cache: when the last download ended.
	modules=$(find "$r/root/go/pkg/mod/cache/download" -type f -printf '%T@\n' 2>/dev/null | sort -n | tail -1 |
		awk -v b="$t0" 'NF {printf "%.2f", $1 - b}')
	pkgs=$(($(in_root "$r" dpkg-query -W -f='.\n' | wc -l) - pkgs0))
	mods=$(du -sm "$r/root/go/pkg/mod/cache/download" 2>/dev/null | cut -f1)
	printf 'run %s: apt %s  song %s  modules %s  cli %s  stack %s  frame %s  video %s  (load %s; cpu %s s; %s apt packages, %s MB of modules; %s)\n' \
		"$n" "${apt:--}" "${song:--}" "${modules:--}" "${cli:--}" "${stack:--}" "${frame:--}" "${video:--}" "$load" "${cpu:--}" "$pkgs" "${mods:--}" "$status"
	if [[ $status != ok ]]; then
		echo "firstrun: run $n failed ($status); the last lines of $LOG:" >&2
		tail -20 "$LOG" >&2
		remove_root "$r"
		return 1
	fi
	remove_root "$r"
}

# cpu_group N prints a new CPU-accounting cgroup (v1 cpuacct or v2), or nothing.
cpu_group() {
	local g
	for g in /sys/fs/cgroup/cpuacct /sys/fs/cgroup; do
		[[ -f $g/cpuacct.usage || -f $g/cgroup.controllers ]] || continue
		if mkdir -p "$g/backbeat-firstrun-$1" 2>/dev/null; then
			echo "$g/backbeat-firstrun-$1"
			return
		fi
	done
}

# cpu_seconds CGROUP prints the CPU time its processes used.
cpu_seconds() {
	if [[ -f $1/cpuacct.usage ]]; then
		awk '{printf "%.0f", $1 / 1e9}' "$1/cpuacct.usage"
	elif [[ -f $1/cpu.stat ]]; then
		awk '$1 == "usage_usec" {printf "%.0f", $2 / 1e6}' "$1/cpu.stat"
	fi
}

median() { sort -g | awk '{a[NR] = $1} END {if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }

main() {
	trap 'remove_root "$DIR/run" || true' EXIT
	echo "# Backbeat first run (make run on fresh Debian 12) — $(date -u +%FT%TZ)"
	echo "# host: $(nproc) cores, $(go version | cut -d' ' -f3), commit $SHA, mirror $MIRROR"
	echo "# seconds from the start of make run at the end of each phase"
	base
	local results=() i line failed=0
	for ((i = 1; i <= RUNS; i++)); do
		if line=$(one "$i"); then
			echo "$line"
			results+=("$line")
		else
			echo "$line"
			failed=1
		fi
	done
	if ((${#results[@]} > 1)); then
		local k
		printf 'median:'
		for k in apt song modules cli stack frame video; do
			printf ' %s %s ' "$k" "$(printf '%s\n' "${results[@]}" | sed -n "s/.* $k \([0-9.]*\) .*/\1/p" | median)"
		done
		echo
	fi
	return "$failed"
}

main
