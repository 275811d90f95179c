#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds each (default 60), one after
# the other, starting from the committed seeds (seeds/TARGET, taken from
# the unit-test vectors) and the corpus grown by earlier runs
# (corpus/TARGET, not committed). Needs the nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz`). A crash stops the run and leaves
# its input in artifacts/TARGET/; make it a regression test, fix, rerun.
#
#   fuzz/run.sh 600        # ten minutes per target
#   fuzz/run.sh 20 config  # one target
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build >/dev/null
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  echo "== $t: ${secs}s"
  if ! cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -n 60 "$log"
    rm -f "$log"
    echo "== $t: FAILED (input kept in fuzz/artifacts/$t/)"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || echo '?')
  echo "== $t: ok, $runs executions, coverage $cov, corpus $(ls "corpus/$t" | wc -l) inputs"
  rm -f "$log"
done
