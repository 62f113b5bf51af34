#!/usr/bin/env bash
# install-deps.sh installs what the tests and the demo need on a fresh Debian 12
# machine that has only Go: ffmpeg, PostgreSQL 15 and fonts from apt, and MinIO,
# buf, protoc-gen-go, staticcheck and nats-server (for scripts/smoke.sh) built
# with `go install` into ./.cache/bin.
# No Docker, no downloads besides apt and the Go module proxy. Idempotent: every
# step is skipped when its result is already present. Run as root.
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

APT_PACKAGES=(ffmpeg postgresql fonts-dejavu-core ca-certificates curl)

log() { printf '==> %s\n' "$*" >&2; }

install_apt() {
	local missing=() p
	for p in "${APT_PACKAGES[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
			missing+=("$p")
		fi
	done
	if ((${#missing[@]} == 0)); then
		log "apt packages present: ${APT_PACKAGES[*]}"
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
	command -v go >/dev/null || {
		echo "install-deps: Go is required (https://go.dev/doc/install)" >&2
		exit 1
	}
	mkdir -p "$BIN"
	install_apt
	go_tool buf github.com/bufbuild/buf/cmd/buf github.com/bufbuild/buf "$BUF_VERSION"
	go_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/protobuf "$PROTOBUF_VERSION"
	go_tool staticcheck honnef.co/go/tools/cmd/staticcheck honnef.co/go/tools "$STATICCHECK_VERSION"
	go_tool minio github.com/minio/minio github.com/minio/minio "$MINIO_VERSION"
	go_tool nats-server github.com/nats-io/nats-server/v2 github.com/nats-io/nats-server/v2 "$NATS_SERVER_VERSION"
	log "tools in $BIN: $(ls "$BIN" | tr '\n' ' ')"
}

main "$@"
