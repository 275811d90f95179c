#!/usr/bin/env bash
# Proxy-under-test command for an external side-by-side harness that runs a
# command per proxy: ktcpvsd with the seed's content switch, one worker.
# The harness exports LISTEN, BACKEND_R1..3 and BENCH_DIR. SCHED picks the
# scheduler (default http). The release examples must be built first
# (cargo build --release --examples; CARGO_TARGET_DIR is honoured).
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin="${CARGO_TARGET_DIR:-$repo/target}/release/examples"
cfg="$BENCH_DIR/ktcpvs.conf"
sock="$BENCH_DIR/ktcpvs.sock"
cat >"$cfg" <<CONF
Virtual http {
    listen = $LISTEN
    scheduler = ${SCHED:-http}
    maxclients = 100000
    server = $BACKEND_R1 1
    server = $BACKEND_R2 1
    server = $BACKEND_R3 1
    rule = pattern "^/images/" use server $BACKEND_R1
    rule = pattern "^/html/" use server $BACKEND_R2
    rule = pattern ".*" use server $BACKEND_R3
}
CONF
# Start the service as soon as the control socket answers (bounded wait).
(
  for _ in $(seq 1 100); do
    if [ -S "$sock" ] && "$bin/tcpvsadm" --socket "$sock" --start -i http >/dev/null 2>&1; then exit 0; fi
    sleep 0.1
  done
  echo "sut-ktcpvs: could not start the service" >&2
) &
exec "$bin/ktcpvsd" --socket "$sock" -f "$cfg" --workers 1
