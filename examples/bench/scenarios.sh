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
  local t targets=($PEERS $(sut_targets 4)) cap=$(((FDMAX - 120) / 2))
  IDLE_N=$IDLE_CONNS
  if [ "$IDLE_N" -gt "$cap" ]; then
    IDLE_N=$cap
    echo "# scenario 4: $IDLE_N connections, not $IDLE_CONNS: the hard ulimit -n ($FDMAX) gives HAProxy 2 fds per connection for no more"
  fi
  [ -n "$FLOOR" ] && targets+=(floor)
  for ROUND in $(seq "$ROUNDS"); do
    for t in "${targets[@]}"; do idle_run "$t"; done
  done
  print_table s4 "4. $IDLE_N idle keep-alive client connections (B_conn = proxy RSS growth per connection, bytes$(sut_note 4))" \
    B_conn "B_conn rss0_KiB rss1_KiB held failed" haproxy
}
idle_run() {             # idle_run TARGET: hold IDLE_CONNS connections, sample RSS before and after
  local t=$1 res="$WORK/idle-$1-$ROUND.txt" i
  if ! MAXCONN=$((IDLE_N + 20)) up "$t"; then record s4 "$t" failed FAILED; return; fi
  local g=$LAST r0 r1
  sleep 0.5; r0=$(rss_kib "$g")
  start "idle-$t" 0 python3 "$BENCH_SRC/idle_clients.py" 127.0.0.1 "$TPORT" "$IDLE_N" "$SMALL" "$res" 120
  local c=$LAST
  for i in $(seq 1200); do [ -f "$res" ] && break; group_alive "$c" || break; sleep 0.1; done
  sleep 0.5; r1=$(rss_kib "$g")
  if [ -f "$res" ]; then
    local ok failed
    ok=$(sed -n 's/^ok=\([0-9]*\).*/\1/p' "$res"); failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' "$res")
    grep "^#" "$res" | sed "s/^# /# $t: /" >&2 || true
    record s4 "$t" rss0_KiB "$r0"; record s4 "$t" rss1_KiB "$r1"
    record s4 "$t" held "$ok"; record s4 "$t" failed "$failed"
    [ "$ok" -gt 0 ] && record s4 "$t" B_conn $(((r1 - r0) * 1024 / ok))
  else
    echo "warning: $t: idle client gave no result; log:" >&2; tail -5 "$WORK/idle-$t.log" >&2
    record s4 "$t" failed FAILED
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
