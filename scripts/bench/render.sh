#!/usr/bin/env bash
# Renderer benchmark (issue 3), one command, everything measured in one run:
#   1. compositor frames/s per template and format (Go benchmark, one core);
#   2. per built-in template at 1080x1080, 30 fps, CRF 20 (veryfast): full
#      render wall time vs ffmpeg encoding the very same frames from a
#      pre-rendered raw file with identical arguments (encode-only);
#   3. a SHORT vs LONG second render: peak RSS (/usr/bin/time -v) and wall
#      time, for flat memory and linear time.
# Every figure is the median of RUNS runs; full and encode-only runs are
# interleaved so load from other users of the machine hits both alike.
#
# Usage: scripts/bench/render.sh            (RUNS=3 CLIP=10 SHORT=30 LONG=120)
#        RUNS=5 TEMPLATES="spectrum halo" scripts/bench/render.sh
set -euo pipefail

RUNS=${RUNS:-3}
CLIP=${CLIP:-10}
SHORT=${SHORT:-30}
LONG=${LONG:-120}
TEMPLATES=${TEMPLATES:-"halo minimal spectrum tide"}
SECTIONS=${SECTIONS:-"1 2 3"}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/backbeat-bench-XXXXXX")
trap 'rm -rf "$WORK"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

echo "# Backbeat renderer benchmark — $(date -u +%FT%TZ)"
echo "# host: $(nproc) cores, $(uname -m), $(go version | cut -d' ' -f3), $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# runs per figure: $RUNS (medians)"

cd "$ROOT/services/gpu-renderer"
go build -o "$WORK/render-bench" ./cmd/render-bench

has() { [[ " $SECTIONS " == *" $1 "* ]]; }

if has 1; then
echo
echo "## 1. Compositor (compose per-frame layers + RGBA->yuv420p, one goroutine), frames/s"
go test -run '^$' -bench '^BenchmarkCompose$' -benchtime 40x -count "$RUNS" . >"$WORK/gobench.txt"
awk '/^BenchmarkCompose\// {name=$1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkCompose\//, "", name);
     for (i=1;i<=NF;i++) if ($(i+1)=="frames/s") print name, $i}' "$WORK/gobench.txt" |
  sort -k1,1 | awk '{v[$1]=v[$1]" "$2} END {for (k in v) print k v[k]}' | sort |
  while read -r name vals; do
    printf "%-22s %8.1f\n" "$name" "$(printf '%s\n' $vals | median)"
  done

fi

ffmpeg -loglevel error -y -f lavfi -i "sine=frequency=220:sample_rate=48000:duration=$LONG" -c:a aac -b:a 128k "$WORK/audio.m4a"
# The job's other inputs as files, decoded by the timed process as the
# service decodes what it downloads: a JPEG cover and an analysis per length.
for s in "$CLIP" "$SHORT" "$LONG"; do
  "$WORK/render-bench" -mode inputs -seconds "$s" -cover "$WORK/cover.jpg" -analysis "$WORK/analysis-$s.json" >/dev/null
done
inputs() { echo -cover "$WORK/cover.jpg" -analysis "$WORK/analysis-$1.json"; }

if has 2; then
echo
echo "## 2. Full render vs encode-only, 1080x1080, 30 fps, CRF 20, veryfast, ${CLIP}s ($((CLIP*30)) frames)"
echo "# wall = elapsed seconds; cpu = user+sys seconds of the process and ffmpeg (less sensitive to other load);"
echo "# go_cpu = the Go process's own share of full_cpu (getrusage RUSAGE_SELF), the rest is ffmpeg;"
echo "# paired = median of full/encode-only over each run's pair (the two ran back to back, under the same load)"
printf "%-10s %8s %8s %7s %8s %8s %7s %7s %7s\n" template full_s enc_s ratio full_cpu enc_cpu ratio go_cpu paired
for t in $TEMPLATES; do
  "$WORK/render-bench" -mode raw -template "$t" -seconds "$CLIP" $(inputs "$CLIP") -out "$WORK/frames.yuv" >/dev/null
  : >"$WORK/full.txt"; : >"$WORK/enc.txt"; : >"$WORK/fullc.txt"; : >"$WORK/encc.txt"; : >"$WORK/fullgo.txt"
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %U %S" -o "$WORK/t.txt" "$WORK/render-bench" -mode encode -seconds "$CLIP" \
      -audio "$WORK/audio.m4a" -raw "$WORK/frames.yuv" -out "$WORK/enc.mp4" >/dev/null
    awk '{print $1}' "$WORK/t.txt" >>"$WORK/enc.txt"; awk '{print $2+$3}' "$WORK/t.txt" >>"$WORK/encc.txt"
    /usr/bin/time -f "%e %U %S" -o "$WORK/t.txt" "$WORK/render-bench" -mode full -template "$t" -seconds "$CLIP" \
      $(inputs "$CLIP") -audio "$WORK/audio.m4a" -out "$WORK/full.mp4" >"$WORK/out.txt"
    awk '{print $1}' "$WORK/t.txt" >>"$WORK/full.txt"; awk '{print $2+$3}' "$WORK/t.txt" >>"$WORK/fullc.txt"
    field go_cpu_seconds <"$WORK/out.txt" >>"$WORK/fullgo.txt"
  done
  f=$(median <"$WORK/full.txt"); e=$(median <"$WORK/enc.txt")
  fc=$(median <"$WORK/fullc.txt"); ec=$(median <"$WORK/encc.txt"); fg=$(median <"$WORK/fullgo.txt")
  pr=$(paste "$WORK/full.txt" "$WORK/enc.txt" | awk '{printf "%.4f\n", $1 / $2}' | median)
  printf "%-10s %8.2f %8.2f %7.3f %8.2f %8.2f %7.3f %7.2f %7.3f   (wall full: %s; encode: %s)\n" "$t" "$f" "$e" "$(echo "$f / $e" | bc -l)" \
    "$fc" "$ec" "$(echo "$fc / $ec" | bc -l)" "$fg" "$pr" "$(tr '\n' ' ' <"$WORK/full.txt")" "$(tr '\n' ' ' <"$WORK/enc.txt")"
  rm -f "$WORK/frames.yuv"
done
fi

if has 3; then
echo
echo "## 3. Length: ${SHORT}s vs ${LONG}s full render (spectrum, square), peak RSS and wall time"
printf "%-8s %12s %14s %10s\n" seconds wall_s maxrss_kb go_hwm_kb
declare -A WALL RSS
for s in "$SHORT" "$LONG"; do
  : >"$WORK/w.txt"; : >"$WORK/r.txt"; : >"$WORK/h.txt"
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -v -o "$WORK/time.txt" "$WORK/render-bench" -mode full -template spectrum -seconds "$s" \
      $(inputs "$s") -audio "$WORK/audio.m4a" -out "$WORK/len.mp4" >"$WORK/out.txt"
    field wall_seconds <"$WORK/out.txt" >>"$WORK/w.txt"
    field peak_rss_kb <"$WORK/out.txt" >>"$WORK/h.txt"
    sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time.txt" >>"$WORK/r.txt"
  done
  WALL[$s]=$(median <"$WORK/w.txt"); RSS[$s]=$(median <"$WORK/r.txt")
  printf "%-8s %12.2f %14s %10s\n" "$s" "${WALL[$s]}" "${RSS[$s]}" "$(median <"$WORK/h.txt")"
done
printf "peak RSS ratio %s/%s s: %.3f (goal <= 1.2)\n" "$LONG" "$SHORT" "$(echo "${RSS[$LONG]} / ${RSS[$SHORT]}" | bc -l)"
printf "time per video second: %.3f s at %ss, %.3f s at %ss (ratio %.3f; 1.0 = linear)\n" \
  "$(echo "${WALL[$SHORT]} / $SHORT" | bc -l)" "$SHORT" "$(echo "${WALL[$LONG]} / $LONG" | bc -l)" "$LONG" \
  "$(echo "(${WALL[$LONG]} / $LONG) / (${WALL[$SHORT]} / $SHORT)" | bc -l)"
fi
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
