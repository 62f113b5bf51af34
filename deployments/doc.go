// Package deployments holds no code: its tests render the Kubernetes
// manifests of this folder with kustomize, decode every document strictly
// into the real Kubernetes types, check what a reviewer would, and parse the
// shipped NATS configuration with nats-server's own parser, parse every
// Dockerfile of the repository with BuildKit's parser, load and evaluate the
// example Prometheus alert rules with Prometheus's own rule manager and
// engine, and hold README.md (the operator's guide) to the code, so the files
// that ship can never drift unnoticed. It is not in go.work (its Kubernetes and
// KEDA dependencies would move the versions every service builds with):
// scripts/test-all.sh and scripts/lint.sh run it with GOWORK=off.
package deployments
