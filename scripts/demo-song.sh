#!/usr/bin/env bash
# demo-song.sh OUT.wav [SECONDS] writes a deterministic demo track made with
# ffmpeg alone: 120 BPM, a C–G/B–Am–F/A progression (one chord per bar), a bass
# pluck and a kick on every beat (0.5 s), 16th-note hi-hats and an arpeggio that
# enters after two bars, so beats, loudness and spectrum bands all move.
# Same arguments, same bytes (bitexact WAV, seeded noise).
set -euo pipefail

out=${1:?usage: demo-song.sh OUT.wav [SECONDS]}
secs=${2:-40}
[[ $secs =~ ^[0-9]+(\.[0-9]+)?$ ]] || {
	echo "demo-song: SECONDS must be a number, got $secs" >&2
	exit 2
}
command -v ffmpeg >/dev/null || {
	echo "demo-song: ffmpeg missing: run scripts/install-deps.sh run" >&2
	exit 1
}

# chord index, one bar (4 beats = 2 s) each
c='mod(floor(t/2)\,4)'
# sel A B C D picks a value by chord index.
sel() { printf 'if(eq(%s\,0)\,%s\,if(eq(%s\,1)\,%s\,if(eq(%s\,2)\,%s\,%s)))' "$c" "$1" "$c" "$2" "$c" "$3" "$4"; }

n1=$(sel 261.63 246.94 220.00 220.00) # C4  B3  A3 A3
n2=$(sel 329.63 293.66 261.63 261.63) # E4  D4  C4 C4
n3=$(sel 392.00 392.00 329.63 349.23) # G4  G4  E4 F4
bass=$(sel 65.41 61.74 55.00 55.00)   # C2  B1  A1 A1
# arpeggio tone: chord tone by 8th note, up an octave
k='mod(floor(t/0.25)\,4)'
arp="if(eq($k\,0)\,$n1\,if(eq($k\,1)\,$n2\,if(eq($k\,2)\,$n3\,$n2)))"

pad="0.07*(sin(2*PI*t*$n1)+sin(2*PI*t*$n2)+sin(2*PI*t*$n3))*(0.55+0.45*exp(-1.5*mod(t\,2)))"
bassv="0.30*sin(2*PI*t*$bass)*exp(-4*mod(t\,0.5))"
lead="0.10*gte(t\,4)*sin(4*PI*t*$arp)*exp(-10*mod(t\,0.25))"
# kick: pitch sweeps 150 Hz → 45 Hz, decays within the beat
kick="0.9*sin(2*PI*(45*mod(t\,0.5)+4.2*(1-exp(-25*mod(t\,0.5)))))*exp(-8*mod(t\,0.5))"
music="$pad+$bassv+$lead"

mkdir -p "$(dirname "$out")"
ffmpeg -hide_banner -loglevel error -nostdin -y \
	-filter_complex "
aevalsrc=exprs=$music|$music:s=44100:d=$secs[m];
aevalsrc=exprs=$kick|$kick:s=44100:d=$secs[k];
anoisesrc=d=$secs:c=white:seed=42:a=0.6:r=44100,highpass=f=7000,aeval=exprs=val(0)*exp(-45*mod(t\,0.25))*(0.5+0.5*gte(mod(t\,0.5)\,0.25))|val(0)*exp(-45*mod(t\,0.25))*(0.5+0.5*gte(mod(t\,0.5)\,0.25)):c=stereo[h];
[m][k][h]amix=inputs=3:normalize=0,alimiter=limit=0.9:level=disabled,afade=t=in:d=0.5,afade=t=out:st=$(awk -v s="$secs" 'BEGIN {x = s - 1.5; print (x < 0 ? 0 : x)}'):d=1.5[out]" \
	-map '[out]' -ac 2 -ar 44100 -c:a pcm_s16le -fflags +bitexact -flags:a +bitexact -map_metadata -1 "$out"
echo "$out"
