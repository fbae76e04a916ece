#!/usr/bin/env bash
# Runs govulncheck (golang.org/x/vuln) over every module of the workspace
# and fails when code reaches a known vulnerability. It needs the
# vulnerability database: https://vuln.go.dev by default, or a local copy
# with GOVULNDB=file:///path/to/db. GOVULNCHECK names the binary (default:
# govulncheck on PATH, else installed at GOVULNCHECK_VERSION). Used by
# `make vulncheck`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${GOVULNCHECK:-$(command -v govulncheck || true)}"
if [ -z "$bin" ]; then
  # v1.1.4: later releases need a golang.org/x/telemetry version the module
  # proxy refuses (403).
  GOBIN="$(go env GOPATH)/bin" go install "golang.org/x/vuln/cmd/govulncheck@${GOVULNCHECK_VERSION:-v1.1.4}"
  bin="$(go env GOPATH)/bin/govulncheck"
fi
args=()
if [ -n "${GOVULNDB:-}" ]; then args=(-db "$GOVULNDB"); fi
status=0
for dir in $(go list -m -f '{{.Dir}}'); do
  echo "== govulncheck ${dir#"$PWD"/}"
  (cd "$dir" && "$bin" "${args[@]}" ./...) || status=1
done
exit "$status"
