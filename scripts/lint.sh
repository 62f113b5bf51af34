#!/usr/bin/env bash
# lint.sh checks every module of go.work: gofmt -l must print nothing, then
# go vet and staticcheck (from ./.cache/bin, see install-deps.sh) must pass.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.cache/bin:$PATH"
command -v staticcheck >/dev/null || {
	echo "lint: staticcheck missing: run scripts/install-deps.sh lint" >&2
	exit 1
}

status=0
mapfile -t dirs < <(go list -m -f '{{.Dir}}')

unformatted=$(gofmt -l "${dirs[@]}")
if [[ -n $unformatted ]]; then
	echo "gofmt: these files need formatting (gofmt -w):" >&2
	echo "$unformatted" >&2
	status=1
fi

for dir in "${dirs[@]}"; do
	rel=${dir#"$ROOT"/}
	echo "==> vet + staticcheck $rel"
	(cd "$dir" && go vet ./...) || status=1
	(cd "$dir" && staticcheck ./...) || status=1
done

# deployments/ is a module outside go.work: its Kubernetes and KEDA
# dependencies must not move the versions the services build with.
echo "==> vet + staticcheck deployments (GOWORK=off)"
[[ -z $(gofmt -l "$ROOT/deployments") ]] || { gofmt -l "$ROOT/deployments" >&2; status=1; }
(cd "$ROOT/deployments" && GOWORK=off go vet ./... && GOWORK=off staticcheck ./...) || status=1

if ((status)); then
	echo "lint: FAIL" >&2
else
	echo "lint: ok"
fi
exit "$status"
