// Package deployments holds no code: its tests render the Kubernetes
// manifests of this folder with kustomize, decode every document strictly
// into the real Kubernetes types, check what a reviewer would, and parse the
// shipped NATS configuration with nats-server's own parser, so the files that
// ship can never drift unnoticed.
package deployments
