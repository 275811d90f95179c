#!/usr/bin/env bash
# run.sh - the ktcpvs side-by-side benchmark: one command, run from a clone.
#
#   examples/bench/run.sh
#
# Installs what is missing (Debian: haproxy nginx wrk curl python3 and friends),
# builds the release ktcpvsd, tcpvsadm and the floor relay (examples here), starts one backend nginx, then runs ktcpvs
# side by side with HAProxy and nginx (and Envoy/sozu when installed) on the
# seed's content switch, one worker thread each, and prints one table per
# scenario with a ratio column against HAProxy (see README.md beside this file):
#   1 keep-alive small requests    2 a new connection per request
#   3 large responses (1/64 MiB)   4 10,000 idle keep-alive connections
#   5 reconfiguration under load   6 scaling with 1 and 2 workers
#   7-9 TLS: keep-alive, a handshake per connection, 64 MiB responses
#   10 one of three backends slow (10a: +20 ms) or failing (10b: 50 % 500s),
#      each proxy with its passive health (ktcpvs: wlc, p2c, lrt; eject_5xx)
#   11-12 HTTP/2 over TLS (ALPN h2) to HTTP/1.1 backends: keep-alive small
#      requests with h2load, and 2,000 idle h2 connections
# The proxy under test is pinned to CPU 1, wrk (h2load) and the backend to CPU 0.
# Everything runs under a `mktemp -d` directory and is killed at exit.
#
# Knobs (environment):
#   SCENARIOS=1,...,12      which scenarios to run (7-9: over TLS; 11, 12: HTTP/2 over TLS)
#   ROUNDS=3                alternating rounds per scenario; tables show medians
#   DURATION=5 WARMUP=1     seconds per wrk run and per warm-up run (h2load: -D and --warm-up-time)
#   CONNS=64                wrk connections (scenarios 1, 2, 5, 6, 7)
#   LARGE_CONNS=4           wrk connections for scenarios 3 and 9
#   IDLE_CONNS=10000        idle connections for scenario 4
#   H2_CONNS=32 H2_STREAMS=10  h2load -c (connections) and -m (streams in flight per
#                           connection) for scenario 11
#   S11_POOL_MAX_IDLE=      N: scenario 11 also runs ktcpvs-SCHED-poolN after each ktcpvs
#                           row, the same with --sysctl pool_max_idle=N (empty: no such rows)
#   IDLE_H2_CONNS=2000      idle HTTP/2 connections for scenario 12
#   S12_H1=1                scenario 12 also holds as many TLS HTTP/1.1 connections per proxy
#                           (rows PROXY-h1); 0: h2 rows only
#   RECONF_OPS=1000         control-socket changes for scenario 5
#   SCHEDULERS="http phttp" ktcpvs schedulers, one row each (ktcpvs-http, ktcpvs-phttp):
#                           http routes a connection by its first request and keeps it
#                           on one backend connection (the original KTCPVS content
#                           switch); phttp routes each request over pooled backend
#                           connections (as HAProxy and nginx do). SCHEDULER=x is an
#                           alias for SCHEDULERS=x.
#   OBS=1                   scenario 1 also runs ktcpvs-SCHED-obs after each ktcpvs-SCHED row:
#                           the same with its observability on (--access-log FILE under the
#                           scratch dir with --sysctl access_log=2, JSON; --admin with
#                           /metrics scraped once a second by curl on CPU 0), and prints
#                           cpu_us obs ÷ plain and the log's lines and drops; 0: no -obs rows
#   SCHED_SCENARIOS=1,2,4,5 scenarios that get a row per scheduler; the others (3, 6-9,
#                           11, 12 by default) run only the first scheduler of SCHEDULERS
#   SUT=ktcpvs              or `haproxy`: a stand-in row (HAProxy through the same knobs)
#   PIN=1                   0: no CPU pinning     KEEP=1: keep the scratch dir
#   ENVOY=path SOZU=path    peers' binaries (default: on PATH; empty: row skipped)
#   FLOOR=path              floor relay binary (default: the floor_relay example, built here)
#   BASELINE=dir            a second ktcpvs build to compare with (a target directory holding
#                           release/examples/ktcpvsd and tcpvsadm): rows base-SCHED beside
#                           ktcpvs-SCHED, alternating in every round
#   S10_CONNS=32            wrk connections for scenario 10
#   S10_SCHEDULERS="wlc p2c lrt"  scenario 10's ktcpvs rows (its own list: SCHEDULERS,
#                           SCHED_SCENARIOS, SUT and BASELINE do not apply to it)
#   SICK_DELAY_MS=20 SICK_FAIL_PERCENT=50  scenario 10's sick backend (10a, 10b)
#   NO_INSTALL=1 NO_BUILD=1 skip the package install / the cargo build
#   CARGO_TARGET_DIR        honoured (binaries are looked up there)

set -euo pipefail

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_SRC/../.." && pwd)

SCENARIOS=${SCENARIOS:-1,2,3,4,5,6,7,8,9,10,11,12}
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-5}; WARMUP=${WARMUP:-1}
CONNS=${CONNS:-64}; LARGE_CONNS=${LARGE_CONNS:-4}
IDLE_CONNS=${IDLE_CONNS:-10000}; RECONF_OPS=${RECONF_OPS:-1000}
H2_CONNS=${H2_CONNS:-32}; H2_STREAMS=${H2_STREAMS:-10}; S11_POOL_MAX_IDLE=${S11_POOL_MAX_IDLE:-}
IDLE_H2_CONNS=${IDLE_H2_CONNS:-2000}; S12_H1=${S12_H1:-1}
[[ $S12_H1 == [01] ]] || { echo "S12_H1 must be 0 or 1, not '$S12_H1'" >&2; exit 2; }
[[ $S11_POOL_MAX_IDLE =~ ^[0-9]*$ ]] || { echo "S11_POOL_MAX_IDLE must be a number, not '$S11_POOL_MAX_IDLE'" >&2; exit 2; }
SCHEDULERS=${SCHEDULERS:-${SCHEDULER:-http phttp}}
SCHED_SCENARIOS=${SCHED_SCENARIOS:-1,2,4,5}
S10_CONNS=${S10_CONNS:-32}; S10_SCHEDULERS=${S10_SCHEDULERS:-wlc p2c lrt}
SICK_DELAY_MS=${SICK_DELAY_MS:-20}; SICK_FAIL_PERCENT=${SICK_FAIL_PERCENT:-50}
SUT=${SUT:-ktcpvs}
OBS=${OBS:-1}
[[ $OBS == [01] ]] || { echo "OBS must be 0 or 1, not '$OBS'" >&2; exit 2; }
PIN=${PIN:-1}
ENVOY=${ENVOY-$(command -v envoy || true)}
SOZU=${SOZU-$(command -v sozu || true)}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
KTCPVSD=$TARGET_DIR/release/examples/ktcpvsd
TCPVSADM=$TARGET_DIR/release/examples/tcpvsadm
SUT_ALL=(); for s in $SCHEDULERS; do
  [[ $s =~ ^[a-z0-9_]+$ ]] || { echo "scheduler '$s': expected a name like http or phttp" >&2; exit 2; }
  [[ " ${SUT_ALL[*]} " == *" ktcpvs-$s "* ]] || SUT_ALL+=("ktcpvs-$s")
done
[ ${#SUT_ALL[@]} -gt 0 ] || { echo "SCHEDULERS is empty" >&2; exit 2; }
for s in $S10_SCHEDULERS; do
  [[ $s =~ ^[a-z0-9_]+$ ]] || { echo "S10_SCHEDULERS: '$s': expected a name like p2c" >&2; exit 2; }
done
BASELINE=${BASELINE:-}
if [ -n "$BASELINE" ]; then
  [ -x "$BASELINE/release/examples/ktcpvsd" ] && [ -x "$BASELINE/release/examples/tcpvsadm" ] ||
    { echo "BASELINE=$BASELINE: no release/examples/ktcpvsd and tcpvsadm there" >&2; exit 2; }
  for s in $SCHEDULERS; do SUT_ALL+=("base-$s"); done
fi
case $SUT in
  ktcpvs) ;;
  haproxy) SUT=sut-haproxy; SUT_ALL=(sut-haproxy) ;;   # the stand-in has no schedulers: one row
  *) echo "SUT must be ktcpvs or haproxy, not '$SUT'" >&2; exit 2 ;;
esac

# ---------- what the benchmark needs ----------
install_missing() {
  local pkgs=() t
  for t in haproxy:haproxy nginx:nginx wrk:wrk curl:curl python3:python3 ss:iproute2 openssl:openssl \
           taskset:util-linux setsid:util-linux column:bsdextrautils h2load:nghttp2-client; do
    command -v "${t%%:*}" >/dev/null || pkgs+=("${t#*:}")
  done
  [ ${#pkgs[@]} = 0 ] && return
  [ "${NO_INSTALL:-0}" = 1 ] && { echo "missing: ${pkgs[*]} (NO_INSTALL=1)" >&2; exit 2; }
  local sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  echo "# installing ${pkgs[*]}" >&2
  "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "${pkgs[@]}" >&2
}
build() {
  [ "${NO_BUILD:-0}" = 1 ] && return
  echo "# building release ktcpvsd and tcpvsadm" >&2
  (cd "$REPO" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet \
     --example ktcpvsd --example tcpvsadm --example floor_relay) >&2
}
install_missing
build
if [ -z "${FLOOR+x}" ]; then
  FLOOR=""; [ -x "$TARGET_DIR/release/examples/floor_relay" ] && FLOOR=$TARGET_DIR/release/examples/floor_relay
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDMAX=$(ulimit -n); [ "$FDMAX" = unlimited ] && FDMAX=1048576
[ "$FDMAX" -gt 65536 ] && FDMAX=65536
if [ "$PIN" = 1 ] && [ "$(nproc)" -lt 2 ]; then PIN=0; fi
PROXY_CPU=1
HZ=$(getconf CLK_TCK)
PEERS="haproxy nginx"
[ -n "$ENVOY" ] && PEERS+=" envoy"
[ -n "$SOZU" ] && PEERS+=" sozu"

WORK=$(mktemp -d /tmp/ktcpvs-bench.XXXXXX)
# shellcheck source=lib.sh
. "$BENCH_SRC/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=targets.sh
. "$BENCH_SRC/targets.sh"
# shellcheck source=scenarios.sh
. "$BENCH_SRC/scenarios.sh"

echo "# ktcpvs side-by-side benchmark, $(date -u +%FT%TZ)"
echo "# $(nproc) CPUs: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); load:$(uptime | sed 's/.*load average://')"
echo "# $(haproxy -v | head -1 | cut -d' ' -f1-3); $(nginx -v 2>&1 | cut -d' ' -f3); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2); ktcpvs $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "# SCENARIOS=$SCENARIOS ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS LARGE_CONNS=$LARGE_CONNS IDLE_CONNS=$IDLE_CONNS RECONF_OPS=$RECONF_OPS SCHEDULERS=\"$SCHEDULERS\" SCHED_SCENARIOS=$SCHED_SCENARIOS SUT=$SUT OBS=$OBS PIN=$PIN ulimit-n=$FDMAX"
if [[ ",$SCENARIOS," == *",11,"* ]] || [[ ",$SCENARIOS," == *",12,"* ]]; then
  echo "# scenarios 11-12: $(h2load --version 2>&1 | head -1); H2_CONNS=$H2_CONNS H2_STREAMS=$H2_STREAMS S11_POOL_MAX_IDLE=$S11_POOL_MAX_IDLE IDLE_H2_CONNS=$IDLE_H2_CONNS S12_H1=$S12_H1"
fi
if [[ ",$SCENARIOS," == *",10,"* ]]; then
  echo "# scenario 10: S10_CONNS=$S10_CONNS S10_SCHEDULERS=\"$S10_SCHEDULERS\" SICK_DELAY_MS=$SICK_DELAY_MS SICK_FAIL_PERCENT=$SICK_FAIL_PERCENT; rows: haproxy, nginx, nginx-no500, $(for s in $S10_SCHEDULERS; do printf 'ktcpvs-%s ' "$s"; done | sed 's/ $//; s/ /, /g')"
fi
SUT_LIST="${SUT_ALL[*]}"
echo "# rows: ${PEERS// /, }, ${SUT_LIST// /, }${FLOOR:+, floor (1:1 relay, no parsing, everything to r2)}; medians over $ROUNDS rounds"
if [ "$OBS" = 1 ] && [[ ",$SCENARIOS," == *",1,"* ]] && [[ " $SUT_LIST" == *" ktcpvs-"* ]]; then
  echo "# scenario 1 also: $(obs_targets 1 | grep -- '-obs$' | paste -sd' ' | sed 's/ /, /g') (access log in JSON to a file, /metrics scraped every second)"
fi

start_backend
for s in ${SCENARIOS//,/ }; do
  case $s in
    [1-9]|1[012]) "scenario_$s" ;;
    *) echo "unknown scenario '$s' (1-12)" >&2; exit 2 ;;
  esac
done
echo
echo "# done $(date -u +%FT%TZ); load:$(uptime | sed 's/.*load average://')"
