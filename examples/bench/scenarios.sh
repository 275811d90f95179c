# scenarios.sh - the measurements of the benchmark (sourced by run.sh): six
# over plain HTTP, three over TLS (7-9), and 10: one of three backends slow
# or failing (its own rows and set-up, at the end of this file).
#
# Each scenario_N runs ROUNDS alternating rounds (every target once per round,
# restarted each time: A B A B ...), records into the results store (lib.sh)
# and prints its table of medians with a ratio column against HAProxy.
# Targets: PEERS (haproxy nginx [envoy] [sozu]), the proxy under test (one
# row per scheduler: ktcpvs-http ktcpvs-phttp ..., or the sut-haproxy stand-in)
# and the floor relay when built. Every target, each scheduler's row included,
# runs once per round, so the medians stay over alternating rounds.

SMALL=/html/index.html

# run_wrk SCEN TARGET PATH WRK_ARGS...: start TARGET, measure, stop
run_wrk() {
  local scen=$1 target=$2 path=$3; shift 3
  if up "$target"; then
    local g=$LAST
    measure "$scen" "$target" "$SCHEME://127.0.0.1:$TPORT$path" "$g" "$@"
    [ -z "$OBS_G" ] || obs_finish "$scen" "$target"
    stop_group "$g"
  else
    record "$scen" "$target" errors FAILED
  fi
}

floor_targets() { [ -n "$FLOOR" ] && echo floor; true; }
# sut_targets N: the proxy-under-test rows of scenario N: one per scheduler in
# SCHEDULERS when N is in SCHED_SCENARIOS, else only the first scheduler's.
sut_targets() {
  if [[ ",$SCHED_SCENARIOS," == *",$1,"* ]]; then echo "${SUT_ALL[@]}"; else echo "${SUT_ALL[0]}"; fi
}
# sut_note N: "" or, when scenario N drops schedulers, a note for its table title
sut_note() {
  [ "$(sut_targets "$1")" = "${SUT_ALL[*]}" ] ||
    echo "; ${SUT_ALL[0]} only (first of SCHEDULERS; SCHED_SCENARIOS=$SCHED_SCENARIOS)"
}

# obs_targets N: sut_targets N with, when OBS=1, a ktcpvs-SCHED-obs row after
# each ktcpvs-SCHED row (scenario 1 only: the access log and /metrics on)
obs_targets() {
  local t
  for t in $(sut_targets "$1"); do
    echo "$t"
    if [ "$OBS" = 1 ] && [[ $t == ktcpvs-* ]]; then echo "$t-obs"; fi
  done
}

scenario_1() {
  local t
  for ROUND in $(seq "$ROUNDS"); do
    measure s1 direct "http://127.0.0.1:$P2$SMALL" "" -c"$CONNS"
    for t in $PEERS $(obs_targets 1) $(floor_targets); do run_wrk s1 "$t" "$SMALL" -c"$CONNS"; done
  done
  print_table s1 "1. keep-alive small requests (wrk -c$CONNS, GET $SMALL; cpu_us = proxy CPU µs per request$(sut_note 1)$([ "$OBS" = 1 ] && echo "; -obs = access log in JSON to a file, /metrics scraped every second"))" \
    cpu_us "cpu_us req_s p50_ms p99_ms errors core" haproxy
  for t in $(obs_targets 1); do
    [[ $t == *-obs ]] || continue
    echo "    $t ÷ ${t%-obs} cpu_us: $(ratio "$(median_of s1 "$t" cpu_us)" "$(median_of s1 "${t%-obs}" cpu_us)");" \
      "per run (medians; warm-up included): $(median_of s1 "$t" log_lines) access-log lines," \
      "$(median_of s1 "$t" log_dropped) dropped ($(range_of s1 "$t" log_dropped) over the rounds)," \
      "$(median_of s1 "$t" log_MiB) MiB, /metrics scraped $(median_of s1 "$t" scrapes) times"
  done
  if [ -n "$FLOOR" ]; then
    local f s
    f=$(median_of s1 floor cpu_us)
    for t in $(sut_targets 1); do
      s=$(median_of s1 "$t" cpu_us)
      echo "    $t overhead above the floor: $(awk -v s="$s" -v f="$f" 'BEGIN { if (s ~ /^[0-9.]+$/ && f > 0) printf "%.1f µs/request (%.2f× the floor)", s-f, s/f; else print "-" }')"
    done
  fi
}

scenario_2() {
  local t close=(-H "Connection: close")
  for ROUND in $(seq "$ROUNDS"); do
    measure s2 direct "http://127.0.0.1:$P2$SMALL" "" -c"$CONNS" "${close[@]}"
    for t in $PEERS $(sut_targets 2) $(floor_targets); do run_wrk s2 "$t" "$SMALL" -c"$CONNS" "${close[@]}"; done
  done
  print_table s2 "2. a new connection per request (Connection: close; cpu_us = proxy CPU µs per connection$(sut_note 2))" \
    cpu_us "cpu_us req_s p50_ms p99_ms errors core" haproxy
}

scenario_3() {
  local t size large=(-c"$LARGE_CONNS" --timeout 60s)
  for size in 1m 64m; do
    for ROUND in $(seq "$ROUNDS"); do
      measure "s3-$size" direct "http://127.0.0.1:$P3/$size.bin" "" "${large[@]}"
      for t in $PEERS $(floor_targets); do run_wrk "s3-$size" "$t" "/$size.bin" "${large[@]}"; done
      for t in $(sut_targets 3); do
        ZEROCOPY=0 run_wrk "s3-$size" "$t" "/$size.bin" "${large[@]}"
        mv_target "s3-$size" "$t" "$t-zc0"
        ZEROCOPY=1 run_wrk "s3-$size" "$t" "/$size.bin" "${large[@]}"
        mv_target "s3-$size" "$t" "$t-zc1"
      done
    done
    print_table "s3-$size" "3. large responses, ${size/m/ MiB} body (wrk -c$LARGE_CONNS; zc0/zc1 = zerocopy_send 0/1; cpu_ms_GiB = proxy CPU ms per GiB$(sut_note 3))" \
      MiB_s "MiB_s cpu_ms_GiB errors core" haproxy direct
  done
}
mv_target() {            # mv_target SCEN FROM TO: rename this round's rows of FROM
  awk -F'\t' -v OFS='\t' -v s="$1" -v a="$2" -v b="$3" -v r="$ROUND" \
    '$1==s && $2==a && $3==r {$2=b} {print}' "$RESULTS_TSV" >"$RESULTS_TSV.new"
  mv "$RESULTS_TSV.new" "$RESULTS_TSV"
}

scenario_4() {
  # HAProxy and the floor reserve 2 fds per client connection: with a hard
  # `ulimit -n` below 2*IDLE_CONNS every row gets the count that still fits.
  local t targets=($PEERS $(sut_targets 4))
  idle_cap 4 "$IDLE_CONNS"
  [ -n "$FLOOR" ] && targets+=(floor)
  for ROUND in $(seq "$ROUNDS"); do
    for t in "${targets[@]}"; do idle_run s4 "$t" h1; done
  done
  print_table s4 "4. $IDLE_N idle keep-alive client connections (B_conn = proxy RSS growth per connection, bytes$(sut_note 4))" \
    B_conn "B_conn rss0_KiB rss1_KiB held failed" haproxy
}
idle_cap() {             # idle_cap N COUNT: IDLE_N = COUNT, or the most the hard ulimit -n allows (2 fds per connection)
  local cap=$(((FDMAX - 120) / 2))
  IDLE_N=$2
  if [ "$IDLE_N" -gt "$cap" ]; then
    IDLE_N=$cap
    echo "# scenario $1: $IDLE_N connections, not $2: the hard ulimit -n ($FDMAX) gives HAProxy 2 fds per connection for no more"
  fi
}
# idle_run SCEN TARGET MODE [ROW]: hold IDLE_N connections to TARGET
# (idle_clients.py --mode MODE: h1, tls-h1 or h2), sample the proxy's RSS
# before and after; recorded under ROW (default TARGET). estab = the proxy's
# established client connections (ss) when the RSS is read.
idle_run() {
  local scen=$1 t=$2 mode=$3 row=${4:-$2} i
  local res="$WORK/idle-$scen-$row-$ROUND.txt"
  if ! MAXCONN=$((IDLE_N + 20)) up "$t"; then record "$scen" "$row" failed FAILED; return; fi
  local g=$LAST r0 r1 estab
  sleep 0.5; r0=$(rss_kib "$g")
  start "idle-$row" 0 python3 "$BENCH_SRC/idle_clients.py" 127.0.0.1 "$TPORT" "$IDLE_N" "$SMALL" "$res" 120 --mode "$mode"
  local c=$LAST
  for i in $(seq 1200); do [ -f "$res" ] && break; group_alive "$c" || break; sleep 0.1; done
  sleep 0.5; r1=$(rss_kib "$g")
  estab=$(ss -Htn state established "( sport = :$TPORT )" | wc -l)
  if [ -f "$res" ]; then
    local ok failed
    ok=$(sed -n 's/^ok=\([0-9]*\).*/\1/p' "$res"); failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' "$res")
    grep "^#" "$res" | sed "s/^# /# $row: /" >&2 || true
    record "$scen" "$row" rss0_KiB "$r0"; record "$scen" "$row" rss1_KiB "$r1"
    record "$scen" "$row" held "$ok"; record "$scen" "$row" failed "$failed"
    record "$scen" "$row" estab "$estab"
    [ "$ok" -gt 0 ] && record "$scen" "$row" B_conn $(((r1 - r0) * 1024 / ok))
  else
    echo "warning: $row: idle client gave no result; log:" >&2; tail -5 "$WORK/idle-$row.log" >&2
    record "$scen" "$row" failed FAILED
  fi
  stop_group "$c"; stop_group "$g"
}

scenario_5() {
  local t targets=(haproxy $(sut_targets 5))
  for ROUND in $(seq "$ROUNDS"); do
    for t in "${targets[@]}"; do
      run_wrk s5 "$t" "$SMALL" -c"$CONNS"
      reconfig_run "$t"
    done
  done
  print_table s5 "5. reconfiguration under load: $RECONF_OPS control-socket changes during scenario 1's load (+reconf rows$(sut_note 5))" \
    cpu_us "cpu_us req_s p99_ms errors ops_ok ops_refused" haproxy
  for t in "${targets[@]}"; do
    echo "    $t: CPU per request with reconfiguration ÷ without: $(ratio "$(median_of s5 "$t+reconf" cpu_us)" "$(median_of s5 "$t" cpu_us)")"
  done
}
reconfig_run() {         # reconfig_run TARGET: scenario 1's load while reconfig.py changes the servers
  local t=$1 res="$WORK/reconf-$1-$ROUND.txt" i
  if ! up "$t"; then record s5 "$t+reconf" errors FAILED; return; fi
  local g=$LAST
  wrk_pin
  "${WRK_PIN[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$TPORT$SMALL" >/dev/null 2>&1 || true
  start "reconf-$t" 0 python3 "$BENCH_SRC/reconfig.py" "$CTL_DIALECT" "$CTL" http \
    "127.0.0.1:$P2B" "127.0.0.1:$P2" "$RECONF_OPS" "$(awk -v d="$DURATION" 'BEGIN {print d * 0.8}')" "$res"
  local c=$LAST p0 p1 f="$WORK/wrk-s5-$t-reconf-$ROUND.txt"
  p0=$(cpu_ticks "$g")
  "${WRK_PIN[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$TPORT$SMALL" >"$f" 2>&1 || true
  p1=$(cpu_ticks "$g")
  for i in $(seq 300); do group_alive "$c" || break; sleep 0.1; done
  parse_wrk s5 "$t+reconf" "$f" $((p1 - p0)) "$g"
  if [ -f "$res" ]; then
    record s5 "$t+reconf" ops_ok "$(sed -n 's/^ok=\([0-9]*\).*/\1/p' "$res")"
    record s5 "$t+reconf" ops_refused "$(sed -n 's/.*refused=\([0-9]*\).*/\1/p' "$res")"
    [ "$ROUND" = 1 ] && grep "^#" "$res" | sed "s/^# /# $t reconf refusal: /" >&2 || true
  else
    echo "warning: $t: reconfig client gave no result; log:" >&2; tail -5 "$WORK/reconf-$t.log" >&2
    record s5 "$t+reconf" ops_ok FAILED
  fi
  stop_group "$c"; stop_group "$g"
}

scenario_6() {
  # Two workers need both cores, so nothing is pinned here and wrk runs 2 threads.
  local t w pin=$PIN cpu=$PROXY_CPU
  PIN=0; PROXY_CPU=any; WRK_THREADS=2
  for ROUND in $(seq "$ROUNDS"); do
    for t in haproxy $(sut_targets 6); do
      for w in 1 2; do
        WORKERS=$w run_wrk s6 "$t" "$SMALL" -c"$CONNS"
        mv_target s6 "$t" "$t-${w}w"
      done
    done
  done
  PIN=$pin; PROXY_CPU=$cpu; WRK_THREADS=1
  print_table s6 "6. scaling, nothing pinned (Nw = N worker threads; wrk -t2 -c$CONNS$(sut_note 6))" \
    req_s "req_s cpu_us p99_ms errors core" haproxy-1w
  for t in haproxy $(sut_targets 6); do
    echo "    $t: req/s with 2 workers ÷ 1 worker: $(ratio "$(median_of s6 "$t-2w" req_s)" "$(median_of s6 "$t-1w" req_s)")"
  done
}

# ---------- TLS: HAProxy (OpenSSL), nginx (OpenSSL) and ktcpvs (rustls) ----------
# TLS_TARGETS: the rows of the TLS scenarios (no floor relay: it has no TLS).
tls_targets() { echo "haproxy nginx $(sut_targets "$1")"; }
with_tls() { make_certificate; TLS=1; SCHEME=https; "$@"; TLS=0; SCHEME=http; }

scenario_7() { with_tls scenario_7_tls; }
scenario_7_tls() {
  local t
  for ROUND in $(seq "$ROUNDS"); do
    for t in $(tls_targets 7); do run_wrk s7 "$t" "$SMALL" -c"$CONNS"; done
  done
  print_table s7 "7. keep-alive small requests over TLS (wrk -c$CONNS, https; cpu_us = proxy CPU µs per request$(sut_note 7))" \
    cpu_us "cpu_us req_s p50_ms p99_ms errors core" haproxy
}

# Scenario 8: a new TLS connection per request, with a full TLS 1.3
# handshake (openssl s_time -new) and resumed (s_time -reuse); hs_core =
# handshakes per second per proxy core (higher is better).
scenario_8() { with_tls scenario_8_tls; }
scenario_8_tls() {
  local t mode
  for ROUND in $(seq "$ROUNDS"); do
    for t in $(tls_targets 8); do
      for mode in new reuse; do
        s_time_run "$t" "$mode"
      done
    done
  done
  for mode in new reuse; do
    print_table "s8-$mode" "8. a TLS connection per request, $([ $mode = new ] && echo "full TLS 1.3 handshake" || echo "resumed session") (openssl s_time -$mode, GET $SMALL; cpu_us = proxy CPU µs per connection; hs_core = connections per second per core$(sut_note 8))" \
      hs_core "hs_core cpu_us conn_s core" haproxy
  done
}
s_time_run() {           # s_time_run TARGET new|reuse
  local t=$1 mode=$2 f="$WORK/stime-$1-$2-$ROUND.txt"
  if ! up "$t"; then record "s8-$mode" "$t" conn_s FAILED; return; fi
  local g=$LAST p0 p1 n secs
  wrk_pin
  "${WRK_PIN[@]}" openssl s_time -connect "127.0.0.1:$TPORT" -www "$SMALL" -"$mode" -time "$WARMUP" >/dev/null 2>&1 || true
  p0=$(cpu_ticks "$g")
  "${WRK_PIN[@]}" openssl s_time -connect "127.0.0.1:$TPORT" -www "$SMALL" -"$mode" -time "$DURATION" >"$f" 2>&1 || true
  p1=$(cpu_ticks "$g")
  stop_group "$g"
  # "N connections in T real seconds, ..."
  n=$(awk '/connections in .* real seconds/ {print $1; exit}' "$f")
  secs=$(awk '/connections in .* real seconds/ {print $4; exit}' "$f")
  if [ -z "$n" ] || [ "$n" = 0 ]; then
    echo "warning: s8 $t $mode: s_time printed no count:" >&2; tail -3 "$f" >&2
    record "s8-$mode" "$t" conn_s FAILED; return
  fi
  record "s8-$mode" "$t" conn_s "$(awk -v n="$n" -v s="$secs" 'BEGIN {printf "%.0f", n/s}')"
  record "s8-$mode" "$t" cpu_us "$(awk -v t=$((p1 - p0)) -v hz="$HZ" -v n="$n" 'BEGIN {printf "%.1f", t/hz*1e6/n}')"
  record "s8-$mode" "$t" hs_core "$(awk -v t=$((p1 - p0)) -v hz="$HZ" -v n="$n" 'BEGIN {printf "%.0f", (t > 0) ? n/(t/hz) : 0}')"
  record "s8-$mode" "$t" core "$(awk -v t=$((p1 - p0)) -v hz="$HZ" -v d="$DURATION" 'BEGIN {printf "%.0f", 100*t/hz/d}')"
}

scenario_9() { with_tls scenario_9_tls; }
scenario_9_tls() {
  local t large=(-c"$LARGE_CONNS" --timeout 60s)
  for ROUND in $(seq "$ROUNDS"); do
    SCHEME=http measure s9 direct "http://127.0.0.1:$P3/64m.bin" "" "${large[@]}"
    for t in $(tls_targets 9); do run_wrk s9 "$t" "/64m.bin" "${large[@]}"; done
  done
  print_table s9 "9. 64 MiB responses over TLS (wrk -c$LARGE_CONNS, https; direct = plain HTTP to the backend; cpu_ms_GiB = proxy CPU ms per GiB$(sut_note 9))" \
    MiB_s "MiB_s cpu_ms_GiB errors core" haproxy direct
}


# ---------- scenario 10: one of three backends slow or failing ----------
# One pool of three (r1, r2 and the sick backend, no content rules), wrk
# -c$S10_CONNS on $POOL_PATH. 10a: the sick backend adds SICK_DELAY_MS to every
# response; 10b: it answers 500 to SICK_FAIL_PERCENT % of requests. Rows:
# haproxy, nginx, nginx-no500 and ktcpvs-SCHED for SCHED in S10_SCHEDULERS
# (targets.sh says how each is set up). err_pct = wrk's errors (non-2xx and
# socket errors) per 100 responses it counted; sick_pct = requests the sick
# backend received (its own counter, read before and after the run) per 100
# responses wrk counted; sick_req_s = the same per second, to be read against
# the sick backend's rate alone, printed first. wrk corrects its latency
# histogram for coordinated omission (a response slower than the mean interval
# per connection adds synthetic samples), so under 1 % of requests at +20 ms
# already puts p99 near 20 ms. Every target is restarted for each run, so its
# health state starts fresh at the warm-up.
POOL_PATH=/index.html
s10_targets() { local s; echo haproxy nginx nginx-no500; for s in $S10_SCHEDULERS; do echo "ktcpvs-$s"; done; }
scenario_10() {
  local t mode scen f rps
  # The sick backend alone, no fault, the same wrk: the rate it can serve.
  start_sick none
  f="$WORK/wrk-s10-sick-alone.txt"
  wrk_pin
  "${WRK_PIN[@]}" wrk -t1 -c"$S10_CONNS" -d"${DURATION}s" "http://127.0.0.1:$PSICK$POOL_PATH" >"$f" 2>&1 || true
  rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$f")
  echo
  echo "# scenario 10: the sick backend alone (no fault, wrk -c$S10_CONNS, sharing CPU 0 with wrk): ${rps:-?} requests/s"
  stop_group "$SICK_G"
  for mode in slow fail; do
    scen=s10-$mode
    start_sick "$mode"
    for ROUND in $(seq "$ROUNDS"); do
      for t in $(s10_targets); do s10_run "$scen" "$t"; done
    done
    stop_group "$SICK_G"
    if [ "$mode" = slow ]; then
      print_table "$scen" "10a. one of three backends slow: +$SICK_DELAY_MS ms on every response (wrk -c$S10_CONNS, GET $POOL_PATH; err_pct = errors per 100 responses; sick_pct = share of requests the sick backend received, by its own count)" \
        p99_ms "p99_ms err_pct req_s sick_pct sick_req_s p50_ms" haproxy
    else
      print_table "$scen" "10b. one of three backends failing: 500 to $SICK_FAIL_PERCENT % of its requests (wrk -c$S10_CONNS, GET $POOL_PATH; err_pct = errors per 100 responses; sick_pct = share of requests the sick backend received, by its own count; nginx retries 500s elsewhere, nginx-no500 does not)" \
        err_pct "err_pct p99_ms req_s sick_pct sick_req_s p50_ms"   # no ratio: error rates near 0 do not divide
    fi
  done
}
s10_run() {              # s10_run SCEN TARGET: warm up, then one measured wrk run with the sick counter read around it
  local scen=$1 t=$2
  if ! up_pool "$t"; then record "$scen" "$t" errors FAILED; return; fi
  local g=$LAST p0 p1 c0 c1 n secs err f="$WORK/wrk-$scen-$t-$ROUND.txt" url="http://127.0.0.1:$TPORT$POOL_PATH"
  wrk_pin
  "${WRK_PIN[@]}" wrk -t1 -c"$S10_CONNS" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
  c0=$(sick_count); p0=$(cpu_ticks "$g")
  "${WRK_PIN[@]}" wrk -t1 -c"$S10_CONNS" -d"${DURATION}s" --latency "$url" >"$f" 2>&1 || true
  p1=$(cpu_ticks "$g"); c1=$(sick_count)
  parse_wrk "$scen" "$t" "$f" $((p1 - p0)) "$g"
  stop_group "$g"
  n=$(awk '/requests in/ {print $1}' "$f")
  secs=$(awk '/requests in/ {gsub(/[s,]/,"",$4); print $4}' "$f")
  err=$(awk '/Socket errors/ {gsub(",",""); s+=$4+$6+$8+$10} /Non-2xx/ {s+=$NF} END {print s+0}' "$f")
  [ -n "$n" ] && [ "$n" -gt 0 ] || return 0
  record "$scen" "$t" err_pct "$(awk -v e="$err" -v n="$n" 'BEGIN {printf "%.3f", 100*e/n}')"
  if [ -n "$c0" ] && [ -n "$c1" ]; then
    record "$scen" "$t" sick_pct "$(awk -v c=$((c1 - c0)) -v n="$n" 'BEGIN {printf "%.3f", 100*c/n}')"
    record "$scen" "$t" sick_req_s "$(awk -v c=$((c1 - c0)) -v s="$secs" 'BEGIN {printf "%.0f", c/s}')"
  else
    echo "warning: $scen $t: the sick backend's counter did not answer" >&2
  fi
}


# ---------- HTTP/2 to clients over TLS (scenarios 11 and 12) ----------
# Every proxy offers h2 by ALPN on its TLS listener (H2=1, targets.sh: HAProxy
# `alpn h2,http/1.1`, nginx `http2`, ktcpvs `http2 = on`) with scenario 7's
# certificate, and speaks HTTP/1.1 to the same backends with the same content
# switch.

# Scenario 11: keep-alive small requests over HTTP/2: h2load -c$H2_CONNS
# -m$H2_STREAMS (streams in flight per connection), one thread on CPU 0, in
# duration mode with its own warm-up (--warm-up-time $WARMUP, -D $DURATION).
# h2load counts only the main duration's requests; the proxy's CPU is read
# WARMUP seconds after h2load started and again when it has exited (its stop
# of 32 connections is counted too, a few ms). be_conns = connections the
# backend nginx accepted (stub_status) over the same window: a proxy that
# keeps its backend connections accepts none once warm. With
# S11_POOL_MAX_IDLE=N each ktcpvs row is followed by ktcpvs-SCHED-poolN:
# the same with `--sysctl pool_max_idle=N`.
h2_targets() {           # h2_targets: scenario 11's rows
  local t
  for t in $(tls_targets 11); do
    echo "$t"
    if [ -n "$S11_POOL_MAX_IDLE" ] && [[ $t == ktcpvs-* ]]; then echo "$t-pool$S11_POOL_MAX_IDLE"; fi
  done
}
scenario_11() { with_tls scenario_11_tls; }
scenario_11_tls() {
  local t
  for ROUND in $(seq "$ROUNDS"); do
    for t in $(h2_targets); do H2=1 h2load_run s11 "$t"; done
  done
  print_table s11 "11. keep-alive small requests over HTTP/2 (h2load -c$H2_CONNS -m$H2_STREAMS, https, ALPN h2, HTTP/1.1 to the backends; cpu_us = proxy CPU µs per request; mean_ms = h2load's mean time per request; be_conns = backend connections opened during the run$(sut_note 11)$([ -n "$S11_POOL_MAX_IDLE" ] && echo "; -pool$S11_POOL_MAX_IDLE = pool_max_idle=$S11_POOL_MAX_IDLE"))" \
    cpu_us "cpu_us req_s mean_ms failed errored non2xx be_conns core" haproxy
}
backend_accepts() {      # backend_accepts -> connections the backend nginx has accepted so far
  curl -s --max-time 2 "http://127.0.0.1:$PSTAT/" | awk 'NR==3 {print $1}'
}
h2load_run() {           # h2load_run SCEN TARGET: start TARGET, one h2load run (warm-up, then DURATION s), stop
  local scen=$1 t=$2 f="$WORK/h2load-$1-$2-$ROUND.txt"
  if ! up "$t"; then record "$scen" "$t" errored FAILED; return; fi
  local g=$LAST h t0 p0 p1 b0 b1
  t0=$(date +%s%N)
  start "h2load-$t" 0 h2load -c"$H2_CONNS" -m"$H2_STREAMS" -t1 -D"$DURATION" --warm-up-time="$WARMUP" \
    "$SCHEME://127.0.0.1:$TPORT$SMALL"
  h=$LAST
  sleep "$(awk -v w="$WARMUP" -v t0="$t0" -v now="$(date +%s%N)" 'BEGIN {s = w - (now - t0) / 1e9; printf "%.3f", (s > 0) ? s : 0}')"
  p0=$(cpu_ticks "$g"); b0=$(backend_accepts)
  wait "$h" 2>/dev/null || true
  p1=$(cpu_ticks "$g"); b1=$(backend_accepts)
  stop_group "$h"; stop_group "$g"
  cp "$WORK/h2load-$t.log" "$f"
  parse_h2load "$scen" "$t" "$f" $((p1 - p0))
  [ -n "$b0" ] && [ -n "$b1" ] && record "$scen" "$t" be_conns $((b1 - b0))
  return 0
}
h2load_count() {         # h2load_count FILE WORD: the count before WORD on h2load's "requests:" line
  awk -v w="$2" '/^requests:/ {for (i = 2; i <= NF; i++) if ($i ~ "^" w) print $(i-1)}' "$1"
}
# parse_h2load SCEN TARGET FILE TICKS: h2load's report into the results store.
#   finished in 6.00s, 40643.33 req/s, 18.41MB/s        (req/s over the main duration)
#   requests: 121930 total, 121930 started, 121930 done, 121930 succeeded, 0 failed, 0 errored, 0 timeout
#   status codes: 121930 2xx, 0 3xx, 0 4xx, 0 5xx
#   time for request:      687us     21.35ms      7.46ms      2.88ms    63.19%   (min max mean sd)
parse_h2load() {
  local scen=$1 target=$2 f=$3 ticks=$4 n
  n=$(awk '/^requests:/ {print $2}' "$f")
  if [ -z "$n" ] || [ "$n" = 0 ]; then
    echo "warning: $scen $target: h2load counted no requests:" >&2; grep -v '^progress' "$f" | tail -5 >&2
    record "$scen" "$target" errored FAILED; return
  fi
  record "$scen" "$target" req_s "$(awk '/^finished in/ {printf "%.0f", $4}' "$f")"
  record "$scen" "$target" failed "$(h2load_count "$f" failed)"
  record "$scen" "$target" errored "$(h2load_count "$f" errored)"
  record "$scen" "$target" timeout "$(h2load_count "$f" timeout)"
  record "$scen" "$target" non2xx "$(awk '/^status codes:/ {print $5+$7+$9}' "$f")"
  record "$scen" "$target" mean_ms "$(to_ms "$(awk '/^time for request:/ {print $6}' "$f")")"
  record "$scen" "$target" cpu_us "$(awk -v t="$ticks" -v hz="$HZ" -v n="$n" 'BEGIN {printf "%.1f", t/hz*1e6/n}')"
  record "$scen" "$target" core "$(awk -v t="$ticks" -v hz="$HZ" -v d="$DURATION" 'BEGIN {printf "%.0f", 100*t/hz/d}')"
}

# Scenario 12: IDLE_H2_CONNS idle HTTP/2 client connections over TLS, held by
# idle_clients.py --mode h2 (ALPN h2, preface, SETTINGS acknowledged, one GET
# on stream 1 read to its end, then idle); B_conn = the proxy's RSS growth per
# connection, as in scenario 4. With S12_H1=1 (the default) each proxy also
# gets a PROXY-h1 row: the same listener (h2 offered) and count, the clients
# asking ALPN http/1.1, so h2's own cost shows apart from TLS's. Under the
# table, per proxy: h2 beside TLS HTTP/1.1 and, when scenario 4 ran in this
# run, plain HTTP/1.1.
scenario_12() { with_tls scenario_12_tls; }
scenario_12_tls() {
  local t s4 targets=($(tls_targets 12))
  idle_cap 12 "$IDLE_H2_CONNS"
  for ROUND in $(seq "$ROUNDS"); do
    for t in "${targets[@]}"; do
      H2=1 idle_run s12 "$t" h2
      if [ "$S12_H1" = 1 ]; then H2=1 idle_run s12 "$t" tls-h1 "$t-h1"; fi
    done
  done
  print_table s12 "12. $IDLE_N idle HTTP/2 client connections over TLS (one GET each, then held; B_conn = proxy RSS growth per connection, bytes; -h1 = the same listener, clients asking ALPN http/1.1; estab = client connections the proxy held at the reading$(sut_note 12))" \
    B_conn "B_conn rss0_KiB rss1_KiB held failed estab" haproxy
  for t in "${targets[@]}"; do
    s4=$(median_of s4 "$t" B_conn)
    echo "    $t B_conn: HTTP/2 over TLS $(median_of s12 "$t" B_conn)$([ "$S12_H1" = 1 ] && echo ", HTTP/1.1 over TLS $(median_of s12 "$t-h1" B_conn) (h2 ÷ h1 $(ratio "$(median_of s12 "$t" B_conn)" "$(median_of s12 "$t-h1" B_conn)"))")$([ "$s4" != - ] && echo ", plain HTTP/1.1 (scenario 4, $(median_of s4 "$t" held) connections) $s4")"
  done
}
