# lib.sh - shared plumbing of the side-by-side benchmark (sourced by run.sh).
#
# What lives here: process-group handling (every process we start is the leader
# of its own group and is killed at exit), free-port picking, CPU and memory
# sampling from /proc, running wrk and reading its report, and the results
# store with its median tables. Nothing here knows about any particular proxy
# (targets.sh) or scenario (scenarios.sh).
#
# Needs from run.sh: WORK (scratch dir), PIN (1 = pin), HZ (clock ticks/s).

GROUPS_STARTED=()        # process-group ids (= leader pids) we started
RESULTS_TSV="$WORK/results.tsv"   # scenario \t target \t round \t metric \t value
: >"$RESULTS_TSV"

# ---------- process groups ----------
group_alive() {          # group_alive PGID: any non-zombie process left in the group?
  ps -e -o pgid=,stat= | awk -v g="$1" '$1==g && $2 !~ /^Z/ {f=1} END {exit !f}'
}
stop_group() {           # stop_group PGID: TERM the group, KILL after 5 s, reap the leader
  local g=$1 i x keep=()
  kill -TERM -- "-$g" 2>/dev/null || true
  for i in $(seq 50); do group_alive "$g" || break; sleep 0.1; done
  kill -KILL -- "-$g" 2>/dev/null || true
  wait "$g" 2>/dev/null || true
  for x in "${GROUPS_STARTED[@]}"; do [ "$x" = "$g" ] || keep+=("$x"); done
  GROUPS_STARTED=("${keep[@]}")
}
cleanup() {
  set +e
  local g
  for g in "${GROUPS_STARTED[@]}"; do stop_group "$g"; done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}

LAST=""
start() {                # start NAME CPU CMD...: new session and group, log in $WORK/NAME.log; sets LAST
  local name=$1 cpu=$2; shift 2
  if [ "$PIN" = 1 ] && [ "$cpu" != any ]; then set -- taskset -c "$cpu" "$@"; fi
  setsid "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  LAST=$!
  GROUPS_STARTED+=("$LAST")
  sleep 0.05
  local pg; pg=$(ps -o pgid= -p "$LAST" | tr -d ' ' || true)
  [ -z "$pg" ] || [ "$pg" = "$LAST" ] || echo "warning: $name pgid $pg != pid $LAST" >&2
}

# ---------- /proc sampling ----------
group_pids() { ps -e -o pid=,pgid= | awk -v g="$1" '$2==g {print $1}'; }
cpu_ticks() {            # cpu_ticks PGID: utime+stime (clock ticks) summed over the group
  local total=0 p t
  for p in $(group_pids "$1"); do
    t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13}') || t=0
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
rss_kib() {              # rss_kib PGID: resident memory (KiB) summed over the group
  local total=0 p r
  for p in $(group_pids "$1"); do
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || r=0
    total=$((total + ${r:-0}))
  done
  echo "$total"
}

# ---------- ports ----------
# Free ports below the ephemeral range, so they cannot clash with the client
# side of the many connections the scenarios open.
PORTS=()
pick_port() {            # pick_port VAR: store a free port in VAR
  local p
  while :; do
    p=$((20000 + RANDOM % 10000))
    [[ " ${PORTS[*]} " == *" $p "* ]] && continue
    ss -Htan "( sport = :$p )" | grep -q . && continue
    PORTS+=("$p"); printf -v "$1" '%s' "$p"; return
  done
}

# ---------- HTTP checks ----------
wait_http() {            # wait_http NAME PGID URL: until it answers 200 (10 s)
  local i code
  for i in $(seq 100); do
    code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "$3" || true)
    [ "$code" = 200 ] && return 0
    if ! group_alive "$2"; then echo "$1 died; log:" >&2; tail -20 "$WORK/$1.log" >&2; return 1; fi
    sleep 0.1
  done
  echo "$1 not answering 200 on $3; log:" >&2; tail -20 "$WORK/$1.log" >&2; return 1
}
check_routing() {        # check_routing BASEURL -> "ok" or what went where
  local path want got out="" bad=0
  for path in /images/index.html:r1 /html/index.html:r2 /index.html:r3; do
    want=${path#*:}; path=${path%%:*}
    got=$(curl -sk -D - -o /dev/null --max-time 2 "$1$path" | tr -d '\r' |
          awk -F': ' 'tolower($1)=="x-backend" {print $2}')
    [ "$got" = "$want" ] || bad=1
    out+="$path->${got:-none} "
  done
  if [ $bad = 0 ]; then echo ok; else echo "BAD: $out"; fi
}

# ---------- wrk ----------
to_ms() {                # wrk latency "812.00us" / "1.23ms" / "1.02s" -> ms
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) ; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'
}
to_mib() {               # wrk size "1.23GB" / "512.00MB" / "12KB" / "100B" -> MiB
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /GB$/) n*=1024; else if (v ~ /MB$/) ; else if (v ~ /KB$/) n/=1024; else n/=1048576; printf "%.1f", n }'
}
WRK_PIN=()
WRK_THREADS=1            # scenario 6 uses 2
wrk_pin() { WRK_PIN=(); if [ "$PIN" = 1 ]; then WRK_PIN=(taskset -c 0); fi; }

# measure SCEN TARGET URL PGID WRK_ARGS...: one wrk run of DURATION seconds
# (after a WARMUP run) against URL, sampling the proxy group PGID (empty for a
# direct run). Records req/s, p50, p99, errors, proxy CPU µs per request and
# per MiB, MiB/s into the results store under (SCEN, TARGET, $ROUND).
measure() {
  local scen=$1 target=$2 url=$3 pg=$4; shift 4
  wrk_pin
  "${WRK_PIN[@]}" wrk -t"$WRK_THREADS" "$@" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
  local p0=0 p1=0 f="$WORK/wrk-$scen-$target-$ROUND.txt"
  [ -n "$pg" ] && p0=$(cpu_ticks "$pg")
  "${WRK_PIN[@]}" wrk -t"$WRK_THREADS" "$@" -d"${DURATION}s" --latency "$url" >"$f" 2>&1 || true
  [ -n "$pg" ] && p1=$(cpu_ticks "$pg")
  parse_wrk "$scen" "$target" "$f" $((p1 - p0)) "$pg"
}
parse_wrk() {            # parse_wrk SCEN TARGET FILE TICKS PGID
  local scen=$1 target=$2 f=$3 ticks=$4 pg=$5 n rps p50 p99 err mib secs
  n=$(awk '/requests in/ {print $1}' "$f")
  if [ -z "$n" ]; then
    echo "warning: $scen $target: wrk printed no report:" >&2; tail -5 "$f" >&2
    record "$scen" "$target" errors 1; return
  fi
  secs=$(awk '/requests in/ {gsub(/[s,]/,"",$4); print $4}' "$f")
  rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$f")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$f")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$f")")
  mib=$(to_mib "$(awk '/requests in/ {print $5}' "$f")")
  err=$(awk '/Socket errors/ {gsub(",",""); s+=$4+$6+$8+$10} /Non-2xx/ {s+=$NF} END {print s+0}' "$f")
  record "$scen" "$target" req_s "$rps"
  record "$scen" "$target" p50_ms "$p50"
  record "$scen" "$target" p99_ms "$p99"
  record "$scen" "$target" errors "$err"
  record "$scen" "$target" MiB_s "$(awk -v m="$mib" -v s="$secs" 'BEGIN {printf "%.0f", m/s}')"
  if [ -n "$pg" ]; then
    record "$scen" "$target" cpu_us "$(awk -v t="$ticks" -v hz="$HZ" -v n="$n" 'BEGIN {printf "%.1f", t/hz*1e6/n}')"
    record "$scen" "$target" cpu_ms_GiB "$(awk -v t="$ticks" -v hz="$HZ" -v m="$mib" 'BEGIN {printf "%.0f", (m > 0) ? t/hz*1e3*1024/m : 0}')"
    record "$scen" "$target" core "$(awk -v t="$ticks" -v hz="$HZ" -v d="$DURATION" 'BEGIN {printf "%.0f", 100*t/hz/d}')"
  fi
}

# ---------- results store and tables ----------
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$ROUND" "$3" "$4" >>"$RESULTS_TSV"; }

median_of() {            # median_of SCEN TARGET METRIC -> median over rounds, or "-"
  awk -F'\t' -v s="$1" -v t="$2" -v m="$3" '$1==s && $2==t && $4==m && $5 ~ /^-?[0-9.]+$/ {print $5}' \
    "$RESULTS_TSV" | sort -g | awk '{v[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
range_of() {             # range_of SCEN TARGET METRIC -> "min-max" over rounds, or "-"
  awk -F'\t' -v s="$1" -v t="$2" -v m="$3" '$1==s && $2==t && $4==m && $5 ~ /^-?[0-9.]+$/ {print $5}' \
    "$RESULTS_TSV" | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {if (NR==0) print "-"; else print lo "-" hi}'
}
ratio() {                # ratio A B -> A/B with 2 decimals, or "-"
  awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b+0 > 0) printf "%.2f", a/b; else print "-" }'
}
targets_of() {           # targets_of SCEN: targets in first-seen order
  awk -F'\t' -v s="$1" '$1==s && !seen[$2]++ {print $2}' "$RESULTS_TSV"
}

# print_table SCEN TITLE KEY "METRICS" [REF...]: one row per target with the
# median of each metric over the rounds, KEY's range over the rounds, then
# KEY's ratio to each REF target.
print_table() {
  local scen=$1 title=$2 key=$3 metrics=$4; shift 4
  local refs=("$@") t m r line hdr
  echo
  echo "## $title"
  echo "    (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
  hdr="target"; for m in $metrics; do hdr+="	$m"; done; hdr+="	${key}_range"
  for r in "${refs[@]}"; do hdr+="	${key}÷$r"; done
  {
    echo "$hdr"
    for t in $(targets_of "$scen"); do
      line="$t"
      for m in $metrics; do line+="	$(median_of "$scen" "$t" "$m")"; done
      line+="	$(range_of "$scen" "$t" "$key")"
      for r in "${refs[@]}"; do line+="	$(ratio "$(median_of "$scen" "$t" "$key")" "$(median_of "$scen" "$r" "$key")")"; done
      echo "$line"
    done
  } | column -t -s $'\t' | sed 's/^/    /'
}
