#!/usr/bin/env bash
# install-deps.sh installs what one make target needs on a fresh Debian 12
# machine that has only Go, and nothing more: apt packages, and Go tools built
# with `go install` into ./.cache/bin.
#
#   scripts/install-deps.sh TARGET...        # go, run, test, smoke, chaos, lint, generate, all
#   scripts/install-deps.sh --print TARGET...  # the plan, one "apt PKG" or
#                                              # "go NAME PACKAGE@VERSION" a line; installs nothing
#
#   go        ca-certificates: the go command fetches modules over HTTPS and
#             trusts the system's roots; every target below includes it
#   run       ffmpeg (the demo: `backbeat demo` embeds NATS, SQLite and a blob folder)
#   test      + postgresql, MinIO and nats-server (scripts/services.sh, testenv's clusters),
#             curl, jq and python3 (the bench scripts the tests run: devmem.sh, pipeline.sh),
#             chromium (the dashboard's browser test, cmd/backbeat/internal/dashtest)
#   smoke     + curl
#   chaos     as test
#   lint      staticcheck
#   generate  buf, protoc-gen-go
#
# The table is NEEDS below. No target gets fonts: the renderer embeds the Go
# fonts (fontconfig comes with ffmpeg anyway). No arguments means
# all (every target's set).
# No Docker, no downloads besides apt and the Go module proxy. Idempotent: every
# step is skipped when its result is already present. The installs run from
# the --print plan, so the plan is exactly what gets installed. Run as root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.cache/bin"

# Pinned versions. MinIO publishes no semver Go module versions: this is what
# `go list -m github.com/minio/minio@latest` resolves to.
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
BUF_VERSION="${BUF_VERSION:-v1.75.0}"
STATICCHECK_VERSION="${STATICCHECK_VERSION:-v0.8.2}"
# The same nats-server the embedded test servers use (pkg/go.mod).
NATS_SERVER_VERSION="${NATS_SERVER_VERSION:-v2.15.2}"
# protoc-gen-go must match the runtime the generated code is compiled against.
PROTOBUF_VERSION="$(awk '$1 == "require" && $2 == "google.golang.org/protobuf" {print $3; exit}
	$1 == "google.golang.org/protobuf" {print $2; exit}' "$ROOT/proto/go.mod")"
PROTOBUF_VERSION="${PROTOBUF_VERSION:-v1.36.12}"

# What each target needs: apt packages, and go:NAME for a Go tool tool_spec knows.
declare -A NEEDS=(
	[go]="ca-certificates"
	[run]="ffmpeg"
	[test]="ffmpeg postgresql curl jq python3 chromium go:minio go:nats-server"
	[smoke]="ffmpeg postgresql curl go:minio go:nats-server"
	[chaos]="ffmpeg postgresql go:minio go:nats-server"
	[lint]="go:staticcheck"
	[generate]="go:buf go:protoc-gen-go"
)
TARGETS=(go run test smoke chaos lint generate)

log() { printf '==> %s\n' "$*" >&2; }

# plan TARGET... prints what the targets need, deduplicated, apt first. Every
# target needs what the go command needs.
plan() {
	local t n pkg version pkgs=() tools=()
	if (($# == 0)) || [[ " $* " == *" all "* ]]; then set -- "${TARGETS[@]}"; fi
	for t in go "$@"; do
		[[ -v "NEEDS[$t]" ]] || {
			echo "install-deps: unknown target $t (one of: ${TARGETS[*]} all)" >&2
			return 2
		}
		for n in ${NEEDS[$t]}; do
			if [[ $n == go:* ]]; then tools+=("${n#go:}"); else pkgs+=("$n"); fi
		done
	done
	printf 'apt %s\n' "${pkgs[@]}" | awk '!seen[$0]++'
	for t in buf protoc-gen-go staticcheck minio nats-server; do
		[[ " ${tools[*]} " == *" $t "* ]] || continue
		read -r pkg _ version <<<"$(tool_spec "$t")"
		printf 'go %s %s@%s\n' "$t" "$pkg" "$version"
	done
}

# tool_spec NAME prints PACKAGE MODULE VERSION of a Go tool.
tool_spec() {
	case $1 in
	buf) echo github.com/bufbuild/buf/cmd/buf github.com/bufbuild/buf "$BUF_VERSION" ;;
	protoc-gen-go) echo google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/protobuf "$PROTOBUF_VERSION" ;;
	staticcheck) echo honnef.co/go/tools/cmd/staticcheck honnef.co/go/tools "$STATICCHECK_VERSION" ;;
	minio) echo github.com/minio/minio github.com/minio/minio "$MINIO_VERSION" ;;
	nats-server) echo github.com/nats-io/nats-server/v2 github.com/nats-io/nats-server/v2 "$NATS_SERVER_VERSION" ;;
	*) return 1 ;;
	esac
}

# install_apt PKG... apt-get installs the packages not yet installed, without
# their recommends.
install_apt() {
	local missing=() p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
			missing+=("$p")
		fi
	done
	if ((${#missing[@]} == 0)); then
		log "apt packages present: $*"
		return
	fi
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: need root to apt-get install ${missing[*]}" >&2
		exit 1
	fi
	log "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# has_version BINARY MODULE VERSION: BINARY exists and was built from MODULE@VERSION.
has_version() {
	[[ -x $1 ]] && go version -m "$1" 2>/dev/null |
		awk -v m="$2" -v v="$3" '($1 == "mod" || $1 == "dep") && $2 == m && $3 == v {found = 1} END {exit !found}'
}

# go_tool NAME PACKAGE MODULE VERSION installs $BIN/NAME from PACKAGE@VERSION,
# reusing a matching binary already built into GOBIN / GOPATH/bin.
go_tool() {
	local name=$1 pkg=$2 mod=$3 version=$4
	local dst="$BIN/$name"
	if has_version "$dst" "$mod" "$version"; then
		log "$name $version present"
		return
	fi
	local gobin candidate
	gobin="$(go env GOBIN)"
	for candidate in "${gobin:+$gobin/$name}" "$(go env GOPATH)/bin/$name"; do
		if [[ -n $candidate ]] && has_version "$candidate" "$mod" "$version"; then
			log "$name $version: reusing $candidate"
			install -m 0755 "$candidate" "$dst"
			return
		fi
	done
	log "go install $pkg@$version (this can take a while)"
	# Outside the workspace: tool versions must not follow go.work.
	(cd / && GOWORK=off GOBIN="$BIN" CGO_ENABLED=0 go install "$pkg@$version")
}

main() {
	local print=0
	if [[ ${1:-} == --print ]]; then
		print=1
		shift
	fi
	local steps
	steps="$(plan "$@")" || exit
	if ((print)); then
		printf '%s\n' "$steps"
		return
	fi
	command -v go >/dev/null || {
		echo "install-deps: Go is required (https://go.dev/doc/install)" >&2
		exit 1
	}
	local kind name rest pkgs=() tools=()
	while read -r kind name rest; do
		case $kind in
		apt) pkgs+=("$name") ;;
		go) tools+=("$name") ;;
		esac
	done <<<"$steps"
	install_apt "${pkgs[@]}"
	((${#tools[@]})) || return 0
	mkdir -p "$BIN"
	for name in "${tools[@]}"; do
		read -ra rest <<<"$(tool_spec "$name")"
		go_tool "$name" "${rest[@]}"
	done
	log "tools in $BIN: $(ls "$BIN" | tr '\n' ' ')"
}

main "$@"
