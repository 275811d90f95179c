#!/usr/bin/env bash
# profile.sh - where ktcpvsd's user-space instructions go on scenario 1's load
# (keep-alive small requests), counted by callgrind: deterministic, so two
# builds compare on a shared machine where times do not.
#
#   examples/bench/profile.sh                  # this build, scheduler http
#   SCHED=phttp BUILD=/tmp/before-target examples/bench/profile.sh
#
# Starts the benchmark's backend nginx, ktcpvsd under
# `valgrind --tool=callgrind --instr-atstart=no`, turns instrumentation on
# only for a `wrk -t1 -c16 -d5s` run, and prints the instructions (Ir) per
# request and the functions that take the most (inclusive). Knobs: SCHED,
# BUILD (a target directory holding release/examples/ktcpvsd and tcpvsadm;
# default this repository's, built first), DURATION (5), TOP (25),
# TLS=1 (scenario 7's load: the same over TLS, the benchmark's certificate),
# KEEP=1 (keep the scratch directory with the callgrind output).
set -euo pipefail

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_SRC/../.." && pwd)
SCHED=${SCHED:-http}
PROFILE_TLS=${TLS:-0}
DURATION=${DURATION:-5}
TOP=${TOP:-25}
PIN=0
HZ=$(getconf CLK_TCK)
for t in valgrind callgrind_control callgrind_annotate nginx wrk; do
  command -v "$t" >/dev/null || { echo "profile.sh needs $t (Debian: valgrind nginx wrk)" >&2; exit 2; }
done
WHAT="ktcpvs $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
if [ -n "${BUILD:-}" ]; then
  WHAT="the build in $BUILD"
else
  BUILD=${CARGO_TARGET_DIR:-$REPO/target}
  (cd "$REPO" && cargo build --release --quiet --example ktcpvsd --example tcpvsadm) >&2
fi
KTCPVSD=$BUILD/release/examples/ktcpvsd
TCPVSADM=$BUILD/release/examples/tcpvsadm
FDMAX=$(ulimit -n); [ "$FDMAX" = unlimited ] && FDMAX=65536
[ "$FDMAX" -gt 65536 ] && FDMAX=65536
PROXY_CPU=any

WORK=$(mktemp -d /tmp/ktcpvs-profile.XXXXXX)
# shellcheck source=lib.sh
. "$BENCH_SRC/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=targets.sh
. "$BENCH_SRC/targets.sh"

start_backend
if [ "${PROFILE_TLS:-0}" = 1 ]; then
  make_certificate; TLS=1; SCHEME=https
fi
# ktcpvsd under callgrind, with the benchmark's configuration.
KTCPVSD_REAL=$KTCPVSD
KTCPVSD="$WORK/ktcpvsd-under-callgrind"
cat >"$KTCPVSD" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$WORK/callgrind.out "$KTCPVSD_REAL" "\$@"
EOF
chmod +x "$KTCPVSD"
launch_ktcpvs "ktcpvs-$SCHED" "$SCHED"
url="$SCHEME://127.0.0.1:$TPORT/html/index.html"
for _ in $(seq 300); do curl -fsk -o /dev/null "$url" && break; sleep 0.1; done
curl -fsk -o /dev/null "$url" || { echo "ktcpvsd did not answer under callgrind" >&2; cat "$WORK/ktcpvs-$SCHED.log" >&2; exit 1; }
pid=$(pgrep -f "callgrind-out-file=$WORK/callgrind.out" | head -1)
callgrind_control -z "$pid" >/dev/null 2>&1
callgrind_control -i on "$pid" >/dev/null 2>&1
wrk -t1 -c16 -d"${DURATION}s" "$url" >"$WORK/wrk.txt"
callgrind_control -i off "$pid" >/dev/null 2>&1
callgrind_control -d "$pid" >/dev/null 2>&1
sleep 1
requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
out=$(ls -t "$WORK"/callgrind.out* | head -1)
callgrind_annotate --inclusive=yes "$out" >"$WORK/annotate.txt" 2>/dev/null
ir=$(awk '/PROGRAM TOTALS/ && !done {gsub(",","",$1); print $1; done=1}' "$WORK/annotate.txt")
echo "# $WHAT, scheduler $SCHED, $(date -u +%FT%TZ)"
echo "# wrk -t1 -c16 -d${DURATION}s $url: $requests requests"
echo "Ir per request: $((ir / requests)) ($ir Ir / $requests requests, user space only)"
echo
echo "# the $TOP functions with the most instructions, inclusive, per request"
awk -v n="$requests" -v top="$TOP" '
    /^-+$/ { rule++; next }
    rule >= 3 && $1 ~ /^[0-9,]+$/ && shown < top {
      ir = $1; gsub(",", "", ir); $1 = ""; $2 = ""
      printf "%8d  %s\n", ir / n, substr($0, 3); shown++ }' "$WORK/annotate.txt"
