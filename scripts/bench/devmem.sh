#!/usr/bin/env bash
# devmem.sh measures the memory of the whole `backbeat dev` process tree
# (the Go process and every child: the renderer's ffmpeg, the audio and
# thumbnail steps' ffmpeg and ffprobe) while it makes one video (issue 11).
#
# It builds backbeat (cmd/backbeat) from the working tree ("head") and, when
# BASE names a commit, from that commit too ("base", from `git archive`, so
# no worktree is registered), and runs them in turn, RUNS times each. Each
# run starts `backbeat dev` in a fresh temporary directory on free ports,
# submits the demo song (scripts/demo-song.sh, 40 s; the region 8 s .. 8 s +
# LENGTH, as `make run` does with 15 s) with the demo's template and format
# (spectrum, square: 1080x1080) as the dev user (bundle pro), and waits as
# `backbeat submit --wait` does: until the video is ready and its thumbnails
# are made. From just before the submit until then, a sampler reads VmRSS
# from /proc/PID/status of backbeat and of every descendant every INTERVAL
# seconds and sums them. A run prints:
#
#   tree_mb    the peak of that sum (MB = 10^6 bytes, as in the issue);
#   go_mb      backbeat's own peak resident set (VmHWM, exact, the Go
#              runtime, the embedded NATS server and SQLite included);
#   ffr_mb     the render's ffmpeg (raw frames on stdin), peak sampled RSS;
#   ffo_mb     the largest other ffmpeg/ffprobe (audio, thumbnail, probes);
#   heap_mb    the peak of go_memstats_heap_inuse_bytes on /metrics, read
#              every 0.25 s (the heap of every service: one Go process);
#   live_mb    the largest heap a GC left live (GODEBUG=gctrace=1);
#   render_s   the render step's time as the coordinator records it;
#   total_s    submit to ready + thumbnails, wall;
#   at_peak    the tree's peak split as Go + render ffmpeg + other ffmpeg;
#   samples    how many times the tree was read.
#
# and checks the MP4 on the edge with ffprobe: H.264, 1080x1080, LENGTH s
# long. Medians per binary follow. Memory does not depend on
# the machine's load as time does; the load average is printed anyway.
#
#   scripts/bench/devmem.sh                   # the working tree, RUNS=3
#   BASE=3ec7465 scripts/bench/devmem.sh      # before and after, alternating
#   QUICK=1 scripts/bench/devmem.sh           # a 2 s video, one run: checks the script works
#   LENGTH=10 RUNS=5 scripts/bench/devmem.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
QUICK=${QUICK:-}
RUNS=${RUNS:-$([[ -n $QUICK ]] && echo 1 || echo 3)}
LENGTH=${LENGTH:-$([[ -n $QUICK ]] && echo 2 || echo 30)}
BASE=${BASE:-}
TEMPLATE=${TEMPLATE:-spectrum}
FORMAT=${FORMAT:-square}
INTERVAL=${INTERVAL:-0.025}
START=8

log() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'devmem.sh: %s\n' "$*" >&2
	exit 1
}
for tool in curl jq python3 go ffmpeg ffprobe; do
	command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh)"
done
[[ $LENGTH =~ ^[0-9]+$ ]] && ((LENGTH >= 1 && LENGTH <= 32)) || die "LENGTH must be 1..32 (the demo song is 40 s), not $LENGTH"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-devmem.XXXXXX")"
DEV_PID=
cleanup() {
	if [[ -n $DEV_PID ]]; then
		kill "$DEV_PID" 2>/dev/null || true
		wait "$DEV_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# The sampler: every INTERVAL s it finds the tree under ROOT_PID (parents
# from /proc/*/stat), sums VmRSS and remembers each process's peak. It stops
# on SIGTERM and prints key=value lines.
cat >"$WORK/sampler.py" <<'EOF'
import os, signal, sys, time, urllib.request
root, interval, out, metrics = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
def tree():
    kids = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(')') + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    pids, todo = [], [root]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(kids.get(p, ()))
    return pids
def kind(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            argv = f.read().split(b'\0')
    except OSError:
        return None
    name = os.path.basename(argv[0]).decode(errors='replace')
    if pid == root:
        return 'go'
    if name == 'ffmpeg' and b'rawvideo' in argv:
        return 'ffr'
    if name in ('ffmpeg', 'ffprobe'):
        return 'ffo'
    return 'other'
def rss(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
def heap():
    try:
        with urllib.request.urlopen(metrics, timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith('go_memstats_heap_inuse_bytes '):
                    return int(float(line.split()[1]))
    except OSError:
        pass
    return 0
peak, at, kinds, per, n, hp, polled = 0, {}, {}, {}, 0, 0, 0
while not stop:
    if time.monotonic() - polled >= 0.25:
        hp, polled = max(hp, heap()), time.monotonic()
    total, now = 0, {}
    for p in tree():
        r = rss(p)
        if r == 0:
            continue
        if p not in kinds:
            kinds[p] = kind(p)
        k = kinds[p]
        total += r
        now[k] = now.get(k, 0) + r
        per[k] = max(per.get(k, 0), r)
    n += 1
    if total > peak:
        peak, at = total, now
    time.sleep(interval)
with open(out, 'w') as f:
    f.write('samples=%d\n' % n)
    f.write('tree_kb=%d\n' % peak)
    f.write('heap_bytes=%d\n' % hp)
    for k in ('go', 'ffr', 'ffo', 'other'):
        f.write('%s_kb=%d\n' % (k, per.get(k, 0)))
        f.write('at_peak_%s_kb=%d\n' % (k, at.get(k, 0)))
EOF

log "building backbeat from the working tree"
go build -o "$WORK/backbeat-head" ./cmd/backbeat
BINARIES=(head)
if [[ -n $BASE ]]; then
	log "building backbeat at $BASE"
	mkdir "$WORK/base"
	git archive "$BASE" | tar -x -C "$WORK/base"
	(cd "$WORK/base" && go build -o "$WORK/backbeat-base" ./cmd/backbeat)
	BINARIES=(base head)
fi
scripts/demo-song.sh "$WORK/song.wav" 40 >/dev/null

kb_mb() { awk -v k="$1" 'BEGIN {printf "%.0f", k * 1024 / 1e6}'; }
val() { sed -n "s/^$1=//p" "$2"; }

# run BINARY N prints one line of figures for one video.
run() {
	local bin=$1 n=$2 dir http url key vid spid t0 t1 hwm v mp4 w h dur
	dir="$WORK/dev-$bin-$n"
	mkdir -p "$dir"
	http="127.0.0.1:$(free_port)"
	url="http://$http"
	GODEBUG=gctrace=1 "$WORK/backbeat-$bin" dev --dir "$dir" --nats-port "$(free_port)" --http "$http" \
		--log-level warn >"$dir/stdout.log" 2>"$dir/stderr.log" &
	DEV_PID=$!
	for ((i = 0; i < 150; i++)); do
		curl -fsS "$url/readyz" >/dev/null 2>&1 && break
		kill -0 "$DEV_PID" 2>/dev/null || { cat "$dir/stderr.log" >&2; die "backbeat dev exited"; }
		sleep 0.2
	done
	curl -fsS "$url/readyz" >/dev/null || { tail -20 "$dir/stderr.log" >&2; die "backbeat dev is not ready"; }
	key=$(tr -d '\n' <"$dir/api-key")
	vid="devmem-$bin-$n"
	: >"$dir/gc-before"
	grep -c '^gc ' "$dir/stderr.log" >"$dir/gc-before" || true
	python3 "$WORK/sampler.py" "$DEV_PID" "$INTERVAL" "$dir/mem" "$url/metrics" &
	spid=$!
	t0=$(date +%s.%N)
	"$WORK/backbeat-$bin" submit "$WORK/song.wav" --api "$url" --key "$key" --video-id "$vid" \
		--start "$START" --end $((START + LENGTH)) --template "$TEMPLATE" --format "$FORMAT" \
		--title "Backbeat Demo" --artist "The Generators" --wait >"$dir/submit.log" 2>&1 ||
		{ kill "$spid"; cat "$dir/submit.log" >&2; die "the video failed (logs in $dir)"; }
	t1=$(date +%s.%N)
	kill -TERM "$spid"
	wait "$spid"
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$DEV_PID/status")
	v=$(curl -fsS -H "Authorization: Bearer $key" "$url/v1/videos/$vid")
	mp4="$dir/video.mp4"
	curl -fsS -o "$mp4" "$(jq -r .video_url <<<"$v")"
	read -r w h dur < <(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height:format=duration \
		-of json "$mp4" | jq -r '[.streams[0].width, .streams[0].height, .format.duration] | @tsv')
	[[ $(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name -of csv=p=0 "$mp4") == h264 ]] || die "$vid is not H.264"
	[[ "$w x $h" == "1080 x 1080" || $FORMAT != square ]] || die "$vid is ${w}x$h, not 1080x1080"
	awk -v d="$dur" -v want="$LENGTH" 'BEGIN {exit !(d - want < 0.05 && want - d < 0.05)}' || die "$vid lasts $dur s, not $LENGTH s"
	kill "$DEV_PID"
	wait "$DEV_PID" 2>/dev/null || true
	DEV_PID=
	# gctrace: "gc N @t s P%: … A->B->C MB, G MB goal, …" (MiB); the GCs after the submit.
	live=$(tail -n +"$(($(cat "$dir/gc-before") + 1))" <(grep '^gc ' "$dir/stderr.log") |
		sed -n 's/.* [0-9]*->[0-9]*->\([0-9]*\) MB.*/\1/p' | awk '$1 > l {l = $1} END {printf "%.0f", l * 1.048576}')
	heap=$(awk -v b="$(val heap_bytes "$dir/mem")" 'BEGIN {printf "%.0f", b / 1e6}')
	printf '%s %s %s %s %s %s %s %s %s %s %sx%s %s\n' \
		"$(kb_mb "$(val tree_kb "$dir/mem")")" "$(kb_mb "$hwm")" "$(kb_mb "$(val ffr_kb "$dir/mem")")" \
		"$(kb_mb "$(val ffo_kb "$dir/mem")")" "$heap" "$live" \
		"$(jq -r '.render_seconds' <<<"$v" | awk '{printf "%.2f", $1}')" \
		"$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')" \
		"$(kb_mb "$(val at_peak_go_kb "$dir/mem")")+$(kb_mb "$(val at_peak_ffr_kb "$dir/mem")")+$(kb_mb "$(val at_peak_ffo_kb "$dir/mem")")" \
		"$(val samples "$dir/mem")" "$w" "$h" "$dur"
	rm -rf "$dir"
}

echo "# backbeat dev memory, one ${LENGTH} s $FORMAT video ($TEMPLATE) — $(date -u +%FT%TZ)"
echo "# host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(go version | cut -d' ' -f3), $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg); sampling every ${INTERVAL}s; MB = 10^6 bytes"
printf '%-5s %3s %7s %6s %6s %6s %7s %7s %8s %7s %-13s %7s %s\n' \
	binary run tree_mb go_mb ffr_mb ffo_mb heap_mb live_mb render_s total_s at_peak samples video
declare -A COLS
for ((r = 1; r <= RUNS; r++)); do
	for bin in "${BINARIES[@]}"; do
		run "$bin" "$r" >"$WORK/result"
		read -r tree go ffr ffo heap live rs ts atp samples size dur <"$WORK/result"
		printf '%-5s %3d %7s %6s %6s %6s %7s %7s %8s %7s %-13s %7s %s %ss\n' \
			"$bin" "$r" "$tree" "$go" "$ffr" "$ffo" "$heap" "$live" "$rs" "$ts" "$atp" "$samples" "$size" "$dur"
		COLS[$bin.tree]+="$tree " COLS[$bin.go]+="$go " COLS[$bin.ffr]+="$ffr " COLS[$bin.ffo]+="$ffo "
		COLS[$bin.heap]+="$heap " COLS[$bin.live]+="$live " COLS[$bin.rs]+="$rs " COLS[$bin.ts]+="$ts "
	done
done
echo
echo "# medians of $RUNS runs"
printf '%-5s %7s %6s %6s %6s %7s %7s %8s %7s\n' binary tree_mb go_mb ffr_mb ffo_mb heap_mb live_mb render_s total_s
for bin in "${BINARIES[@]}"; do
	printf '%-5s' "$bin"
	for c in tree go ffr ffo heap live rs ts; do
		printf ' %7s' "$(tr ' ' '\n' <<<"${COLS[$bin.$c]}" | grep . | median)"
	done
	echo
done
if [[ -n $BASE ]]; then
	for c in tree rs; do
		b=$(tr ' ' '\n' <<<"${COLS[base.$c]}" | grep . | median)
		h=$(tr ' ' '\n' <<<"${COLS[head.$c]}" | grep . | median)
		printf 'head/base %s: %.3f\n' "$c" "$(awk -v a="$h" -v b="$b" 'BEGIN {print a / b}')"
	done
fi
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
