#!/usr/bin/env bash
# test-all.sh runs `go test -race` in every module of go.work against the real
# services (scripts/services.sh must have started them; `make test` does), and
# ends with one summary made of go test's own result lines, then ok or FAIL.
#
#   scripts/test-all.sh [extra go test flags...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
eval "$("$ROOT/scripts/services.sh" env)"
export PATH="$ROOT/.cache/bin:$PATH"

TIMEOUT=${TEST_TIMEOUT:-20m}
LOGS="$ROOT/.cache/test"
mkdir -p "$LOGS"

failed=()
summary=()
while IFS= read -r dir; do
	rel=${dir#"$ROOT"/}
	log="$LOGS/$(echo "$rel" | tr / _).log"
	printf '==> go test %s\n' "$rel"
	# -json would hide the familiar output; tee keeps it live and saved.
	if (cd "$dir" && go test -race -count=1 -timeout "$TIMEOUT" "$@" ./... 2>&1) | tee "$log"; then
		:
	else
		failed+=("$rel")
	fi
	# A package result line: ok / FAIL / ? <pkg>; keep them for the summary.
	while IFS= read -r line; do summary+=("$line"); done < <(grep -E '^(ok|FAIL|\?)[[:space:]]' "$log" || true)
done < <(go list -m -f '{{.Dir}}')

# deployments/ is a module outside go.work (deployments/go.mod and go.sum:
# its Kubernetes, KEDA and BuildKit dependencies must not move the versions
# the services build with). Its tests read every file it ships:
# deployments/manifests_test.go renders deployments/kustomization.yaml
# (namespace.yaml, deployments/config.yaml, deployments/nats/nats.yaml,
# deployments/nats/provision.yaml, deployments/services/api.yaml,
# deployments/services/audio.yaml, deployments/services/cdn.yaml,
# deployments/services/gpu-renderer.yaml,
# deployments/services/render-coordinator.yaml,
# deployments/services/thumbnail.yaml, deployments/keda/scaledobjects.yaml)
# and checks the manifests and nats.conf, and TestEachWorkloadHasItsFile
# that each of those files defines its workload and is applied;
# deployments/images_test.go parses every
# Dockerfile; deployments/readme_test.go holds deployments/README.md to the
# code; deployments/alerts_test.go loads deployments/prometheus/alerts.yaml
# in Prometheus's rule parser, holds it to the README's Metrics and Alert
# rules sections and evaluates every rule in Prometheus's engine;
# deployments/doc.go is the package. No -race: nothing in them is
# concurrent, and the race build of client-go costs minutes on a fresh machine.
log="$LOGS/deployments.log"
printf '==> go test deployments (GOWORK=off)\n'
if (GOWORK=off go test -C "$ROOT/deployments" -count=1 -timeout "$TIMEOUT" "$@" ./... 2>&1) | tee "$log"; then
	:
else
	failed+=("deployments")
fi
while IFS= read -r line; do summary+=("$line"); done < <(grep -E '^(ok|FAIL|\?)[[:space:]]' "$log" || true)

# The renderer's assembly has Go twins (ring, YUV, prefetch); -tags purego
# builds those alone, as on other CPUs, and its tests must pass too.
rel=services/gpu-renderer
log="$LOGS/gpu-renderer-purego.log"
printf '==> go test -tags purego %s\n' "$rel"
if (cd "$ROOT/$rel" && go test -race -count=1 -timeout "$TIMEOUT" -tags purego "$@" ./... 2>&1) | tee "$log"; then
	:
else
	failed+=("$rel (purego)")
fi
while IFS= read -r line; do summary+=("$line (purego)"); done < <(grep -E '^(ok|FAIL|\?)[[:space:]]' "$log" || true)

# The coordinator's simulation over ten thousand seeds (in memory), without -race.
log="$LOGS/simulation.log"
printf '==> simulation (%s seeds)\n' "${SIM_SEEDS:-10000}"
if (cd "$ROOT/services/render-coordinator" && go test -count=1 -run 'TestSimulation$' -timeout "$TIMEOUT" -v -sim.seeds="${SIM_SEEDS:-10000}" . 2>&1) | tee "$log" | grep -E 'simulation:|^(ok|FAIL|---)'; then
	:
else
	failed+=("services/render-coordinator (simulation)")
fi
while IFS= read -r line; do summary+=("$line (simulation)"); done < <(grep -E '^(ok|FAIL)[[:space:]]' "$log" || true)

printf '\n==> summary (logs in %s)\n' "${LOGS#"$ROOT"/}"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
	printf 'FAIL: modules %s\n' "${failed[*]}"
	echo FAIL
	exit 1
fi
echo ok
