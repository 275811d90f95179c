#!/usr/bin/env bash
# obs_split.sh - where scenario 1's -obs row spends its CPU: ktcpvsd (scheduler
# phttp, one worker) under scenario 1's load with each observability option
# on its own, in alternating rounds, pinned as run.sh pins (ktcpvsd on CPU 1;
# wrk, the backend and the /metrics scraper on CPU 0).
#
#   examples/bench/obs_split.sh          (after run.sh has built the release examples)
#
# Variants: plain; json-file (--access-log FILE --sysctl access_log=2);
# json-null (the same to /dev/null); common-file (access_log=1); log-off
# (--access-log FILE with access_log=0); admin-scrape (--admin, /metrics
# scraped once a second); obs (json-file + admin-scrape, as run.sh's -obs row).
# Per variant and round: proxy CPU µs per request, req/s, context switches
# and write() calls per request (/proc/PID/task/*/status, /proc/PID/io
# syscw), and CPU µs per request of each thread (/proc/PID/task/*/stat).
# Knobs: ROUNDS=3 DURATION=5 CONNS=64 SCHED=phttp; CARGO_TARGET_DIR honoured.
set -euo pipefail
BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_SRC/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
KTCPVSD=$TARGET_DIR/release/examples/ktcpvsd; TCPVSADM=$TARGET_DIR/release/examples/tcpvsadm
[ -x "$KTCPVSD" ] && [ -x "$TCPVSADM" ] || { echo "build first: cargo build --release --examples" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-5}; CONNS=${CONNS:-64}; SCHED=${SCHED:-phttp}
PIN=1; [ "$(nproc)" -lt 2 ] && PIN=0
HZ=$(getconf CLK_TCK); PROXY_CPU=1; ROUND=1
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDMAX=$(ulimit -n); [ "$FDMAX" = unlimited ] && FDMAX=1048576; [ "$FDMAX" -gt 65536 ] && FDMAX=65536
WORK=$(mktemp -d /tmp/ktcpvs-obs-split.XXXXXX)
# shellcheck source=lib.sh
. "$BENCH_SRC/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=targets.sh
. "$BENCH_SRC/targets.sh"

per_req() { awk -v a="$1" -v n="$2" -v k="$3" -v f="$4" 'BEGIN {printf f, a*k/n}'; }   # per_req COUNT REQUESTS FACTOR FORMAT
ctx() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s+=$2} END {print s+0}'; }
syscw() { awk '/^syscw/ {print $2}' /proc/"$1"/io; }
thread_ticks() {         # thread_ticks PID -> "TID COMM TICKS" per thread
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s %s %s\n' "${t##*/}" "$(tr ' ' _ <"$t/comm")" "$(sed 's/.*) //' "$t/stat" | awk '{print $12+$13}')"
  done
}

variant() {              # variant NAME [KTCPVSD ARGS...]; SCRAPE=1 starts the /metrics scraper
  local name=$1; shift
  TPORT=$PKT; CTL="$WORK/$name.sock"; rm -f "$CTL"
  cat >"$WORK/$name.conf" <<C
Virtual http {
    listen = 127.0.0.1:$PKT
    scheduler = $SCHED
    maxclients = 100000
    server = 127.0.0.1:$P1 1
    server = 127.0.0.1:$P2 1
    server = 127.0.0.1:$P3 1
    rule = pattern "^/images/" use server 127.0.0.1:$P1
    rule = pattern "^/html/" use server 127.0.0.1:$P2
    rule = pattern ".*" use server 127.0.0.1:$P3
}
C
  start "$name" "$PROXY_CPU" "$KTCPVSD" --socket "$CTL" -f "$WORK/$name.conf" --workers 1 "$@"
  local g=$LAST i
  for i in $(seq 100); do [ -S "$CTL" ] && break; sleep 0.1; done
  "$TCPVSADM" --socket "$CTL" --start >>"$WORK/$name.log" 2>&1
  OBS_G=""; [ "${SCRAPE:-0}" = 1 ] && start_scraper "$name"
  wait_http "$name" "$g" "http://127.0.0.1:$PKT/html/index.html"
  local url="http://127.0.0.1:$PKT/html/index.html" c0 c1 w0 w1 p0 p1 n th0 th1
  wrk_pin
  "${WRK_PIN[@]}" wrk -t1 -c"$CONNS" -d1s "$url" >/dev/null 2>&1
  c0=$(ctx "$g"); w0=$(syscw "$g"); th0=$(thread_ticks "$g"); p0=$(cpu_ticks "$g")
  "${WRK_PIN[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url" >"$WORK/wrk.txt" 2>&1
  p1=$(cpu_ticks "$g"); th1=$(thread_ticks "$g"); w1=$(syscw "$g"); c1=$(ctx "$g")
  n=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$name" "$(per_req $((p1 - p0)) "$n" "$((1000000 / HZ))" %.1f)" \
    "$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$WORK/wrk.txt")" \
    "$(per_req $((c1 - c0)) "$n" 1 %.3f)" "$(per_req $((w1 - w0)) "$n" 1 %.3f)" \
    "$(join <(sort <<<"$th0") <(sort <<<"$th1") | awk -v n="$n" -v hz="$HZ" \
        '$5 > $3 {printf "%s%s=%.1f", sep, $2, ($5-$3)/hz*1e6/n; sep=" "}')"
  stop_scraper; stop_group "$g"; rm -f "$WORK"/*.access.log
}

start_backend
HEAD=$'round\tvariant\tcpu_us\treq_s\tctxsw_req\twrites_req\tthreads_cpu_us'
echo "# ktcpvs obs split, $(date -u +%FT%TZ), ktcpvs $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'); SCHED=$SCHED ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS PIN=$PIN"
for ROUND in $(seq "$ROUNDS"); do
  variant plain
  variant json-file --access-log "$WORK/json.access.log" --sysctl access_log=2
  variant json-null --access-log /dev/null --sysctl access_log=2
  variant common-file --access-log "$WORK/common.access.log" --sysctl access_log=1
  variant log-off --access-log "$WORK/off.access.log" --sysctl access_log=0
  SCRAPE=1 variant admin-scrape --admin "127.0.0.1:$PADMIN"
  SCRAPE=1 variant obs --access-log "$WORK/obs.access.log" --sysctl access_log=2 --admin "127.0.0.1:$PADMIN"
done >"$WORK/split.tsv"
{ echo "$HEAD"; cat "$WORK/split.tsv"; } | column -t -s $'\t'
echo
echo "# medians over the rounds"
{
  printf 'variant\tcpu_us\treq_s\tctxsw_req\twrites_req\n'
  for v in $(awk -F'\t' '!seen[$2]++ {print $2}' "$WORK/split.tsv"); do
    printf '%s' "$v"
    for col in 3 4 5 6; do
      printf '\t%s' "$(awk -F'\t' -v v="$v" -v c="$col" '$2==v {print $c}' "$WORK/split.tsv" | sort -g |
        awk '{x[NR]=$1} END {print (NR%2) ? x[(NR+1)/2] : (x[NR/2]+x[NR/2+1])/2}')"
    done
    echo
  done
} | column -t -s $'\t'
