#!/usr/bin/env bash
# Runs every fuzz test of the suite briefly: each target for FUZZTIME
# (default 10s, first argument), new inputs minimized for at most 50 runs
# (the default 60 s minimization stalls short runs). A failing input is
# written to the package's testdata/fuzz/<Target>/ directory: commit it with
# the fix, it then runs with every `go test`. Used by `make fuzz`.
#
# A run that fails with "context deadline exceeded" and writes no failing
# input is Go's fuzz coordinator racing its own -fuzztime deadline
# (golang/go#75804, fixed in Go 1.27, not in 1.26.x): it is reported and
# not counted. Any failure that writes an input, or fails otherwise, is.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-${FUZZTIME:-10s}}"
# module-dir package target
targets=(
  "pkg ./events FuzzParseInput"
  "pkg ./events FuzzParseSample"
  "pkg ./events FuzzDecodeBatch"
  "pkg ./events FuzzDecodeInputMatchesEncodingJSON"
  "pkg ./events FuzzDecodeSampleMatchesEncodingJSON"
  "pkg ./events FuzzSkipJSONMatchesValid"
  "services/collector ./internal/app FuzzFastArrayMatchesStd"
  "services/collector ./internal/app FuzzLogsMatchReference"
  "pkg ./accesslog FuzzParseCombined"
  "pkg ./accesslog FuzzTimestamp"
  "pkg ./metrics FuzzParseDefinitions"
  "pkg ./metrics FuzzDecodeBinaryBatch"
  "pkg ./events FuzzIsName"
  "pkg ./rules FuzzParse"
  "services/query ./internal/ports FuzzQueryParams"
)
status=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
inputs() { if [[ -d $1 ]]; then find "$1" -type f | wc -l; else echo 0; fi; }
for t in "${targets[@]}"; do
  read -r dir pkg name <<<"$t"
  echo "== $dir/${pkg#./} $name ($fuzztime)"
  corpus="$dir/${pkg#./}/testdata/fuzz/$name"
  before=$(inputs "$corpus")
  if ! (cd "$dir" && go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 50x) 2>&1 | tee "$out"; then
    if [[ $(inputs "$corpus") -eq $before ]] && grep -q '^    context deadline exceeded$' "$out"; then
      echo "== $name: no failing input; the fuzz coordinator's deadline race (golang/go#75804), not counted"
    else
      status=1
    fi
  fi
done
exit "$status"
