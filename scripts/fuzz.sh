#!/usr/bin/env bash
# Runs every fuzz test of the suite briefly: each target for FUZZTIME
# (default 10s, first argument), new inputs minimized for at most 50 runs
# (the default 60 s minimization stalls short runs). A failing input is
# written to the package's testdata/fuzz/<Target>/ directory: commit it with
# the fix, it then runs with every `go test`. Used by `make fuzz`.
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
  "pkg ./rules FuzzParse"
  "services/query ./internal/ports FuzzQueryParams"
)
status=0
for t in "${targets[@]}"; do
  read -r dir pkg name <<<"$t"
  echo "== $dir/${pkg#./} $name ($fuzztime)"
  if ! (cd "$dir" && go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 50x); then
    status=1
  fi
done
exit "$status"
