#!/usr/bin/env bash
# Rebuilds the report fixture (tests/report.rs) with real tiny runs: trains
# tests/fixtures/report/experiments/fixture.yaml into tests/fixtures/report/runs (dropping
# checkpoints and logs, which a report does not read), then writes the report the test expects
# into tests/fixtures/report/expected/. Run it after a change that is meant to change reports
# or run ids, and read the diff of expected/ before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/release/mixsweep"
fx=tests/fixtures/report
rm -rf "$fx/runs" "$fx/expected"
"$bin" --store "$fx/runs" sweep "$fx/experiments/fixture.yaml" --threads 1 || [ $? -eq 1 ]   # one setting diverges: exit 1
find "$fx/runs" -name checkpoint -type d -prune -exec rm -rf {} +
find "$fx/runs" \( -name 'attempt-*.log' -o -name claim -o -name schedule.jsonl \) -delete
"$bin" --store "$fx/runs" report "$fx/experiments/fixture.yaml" --reports "$fx/expected"
echo "fixture rebuilt: $fx/runs, $fx/expected"
