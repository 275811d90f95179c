# targets.sh - the backends and every proxy the benchmark compares (sourced by run.sh).
#
# What lives here: the backend nginx (one worker, three server blocks r1/r2/r3
# adding `X-Backend: rN`, plus r2b, a second r2 that scenario 5 adds and
# removes), and one launcher per proxy writing its config for the seed's
# content switch (^/images/ -> r1, ^/html/ -> r2, the rest -> r3,
# least-connection, keep-alive to the backends). Every proxy runs one worker
# thread unless the scenario asks for more.
#
# launch TARGET: starts TARGET (haproxy, nginx, envoy, sozu, floor, ktcpvs-SCHED
# (ktcpvs with scheduler SCHED, e.g. ktcpvs-http, ktcpvs-phttp), ktcpvs-SCHED-obs
# (the same with its observability on: the access log in JSON to a file and
# the admin listener's /metrics scraped once a second; scenario 1 with OBS=1),
# ktcpvs-SCHED-poolN (the same with pool_max_idle=N; scenario 11 with
# S11_POOL_MAX_IDLE=N),
# base-SCHED (the same from the BASELINE build), or
# sut-haproxy: HAProxy driven through the same knobs as ktcpvs, a stand-in
# that proves the harness) on CPU 1 and sets LAST (its process group), TPORT
# (its listen port), CTL (its control socket, if any) and CTL_DIALECT.
# Per-launch knobs: WORKERS (threads), ZEROCOPY (0/1), MAXCONN (client conns),
# H2 (1: HTTP/2 to clients on the TLS listener too; scenarios 11 and 12),
# POOL_MAX_IDLE (ktcpvs: its pool_max_idle setting; empty: the default).

pick_port P1; pick_port P2; pick_port P3; pick_port P2B; pick_port PSTAT

# ---------- TLS (scenarios 7-9, 11, 12) ----------
# With TLS=1 every launcher serves HTTPS with the same ECDSA P-256
# certificate for `localhost` (made once per run with openssl), and SCHEME
# says so to the scenarios. With H2=1 as well it offers HTTP/2 by ALPN
# (h2, then http/1.1): HAProxy `alpn h2,http/1.1`, nginx `http2` (see
# nginx_http2), ktcpvs `http2 = on`; the backends stay HTTP/1.1.
TLS=0
SCHEME=http
make_certificate() {
  [ -f "$WORK/tls/site.pem" ] && return
  mkdir -p "$WORK/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$WORK/tls/site.key" -out "$WORK/tls/site.pem" 2>/dev/null
  cat "$WORK/tls/site.pem" "$WORK/tls/site.key" >"$WORK/tls/combined.pem"   # HAProxy's crt
}

# ---------- backend nginx ----------
USERLINE=""; [ "$(id -u)" = 0 ] && USERLINE="user root root;"   # workers must read the 0700 temp dir
TEMPS="client_body_temp_path $WORK/tmp/body; proxy_temp_path $WORK/tmp/proxy;
  fastcgi_temp_path $WORK/tmp/fcgi; uwsgi_temp_path $WORK/tmp/uwsgi; scgi_temp_path $WORK/tmp/scgi;"

HEALTH_LOC='location = /health { return 200 "ok\n"; }'   # scenario 10's active checks
write_backend() {
  mkdir -p "$WORK/www/images" "$WORK/www/html" "$WORK/tmp"
  local body f
  body=$(printf '<html><body>%s</body></html>\n' "$(head -c 300 /dev/zero | tr '\0' 'x')")
  for f in index.html images/index.html html/index.html; do echo "$body" >"$WORK/www/$f"; done
  head -c 1048576 /dev/urandom >"$WORK/www/1m.bin"          # scenario 3 bodies (served by r3)
  head -c 1048576 /dev/urandom >"$WORK/www/64m.bin.part"
  for f in $(seq 64); do cat "$WORK/www/64m.bin.part"; done >"$WORK/www/64m.bin"
  rm "$WORK/www/64m.bin.part"
  cat >"$WORK/backend.conf" <<EOF
$USERLINE
worker_processes 1;
worker_rlimit_nofile $FDMAX;
daemon off;
pid $WORK/backend.pid;
error_log $WORK/backend-error.log warn;
events { worker_connections $((FDMAX - 64)); }
http {
  $TEMPS
  access_log off;
  default_type text/html;
  sendfile off;                     # small pages: one writev
  keepalive_requests 1000000;       # never close the proxies' pooled connections
  keepalive_timeout 120s;
  open_file_cache max=64;
  server { listen 127.0.0.1:$P1;  root $WORK/www; add_header X-Backend r1 always; $HEALTH_LOC }
  server { listen 127.0.0.1:$P2;  root $WORK/www; add_header X-Backend r2 always; $HEALTH_LOC }
  server { listen 127.0.0.1:$P2B; root $WORK/www; add_header X-Backend r2 always; $HEALTH_LOC }
  server { listen 127.0.0.1:$P3;  root $WORK/www; add_header X-Backend r3 always; $HEALTH_LOC
           location ~ [.]bin\$ { sendfile on; } }   # scenario 3's large bodies
  server { listen 127.0.0.1:$PSTAT; location / { stub_status; } }
}
EOF
}
start_backend() {
  write_backend
  start backend 0 nginx -p "$WORK" -e "$WORK/backend-error.log" -c "$WORK/backend.conf"
  BACKEND_G=$LAST
  wait_http backend "$BACKEND_G" "http://127.0.0.1:$P2/html/index.html"
}

# ---------- HAProxy (peer row, and the stand-in SUT) ----------
pick_port PHA
haproxy_conf() {         # haproxy_conf PORT SOCKET -> config on stdout
  local splice=""
  [ "${ZEROCOPY:-0}" = 1 ] && splice="    option splice-request
    option splice-response"
  cat <<EOF
global
    nbthread ${WORKERS:-1}
    maxconn ${MAXCONN:-4096}
    stats socket $2 level admin
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 120s
    option http-keep-alive
    http-reuse always               # share idle backend connections across clients, like nginx
$splice
frontend fe
    bind 127.0.0.1:$1$([ "$TLS" = 1 ] && echo " ssl crt $WORK/tls/combined.pem alpn $([ "${H2:-0}" = 1 ] && echo h2,)http/1.1")
    acl p_images path_reg ^/images/
    acl p_html   path_reg ^/html/
    use_backend r1 if p_images
    use_backend r2 if p_html
    default_backend r3
backend r1
    balance leastconn
    server s1 127.0.0.1:$P1
backend r2
    balance leastconn
    server s1 127.0.0.1:$P2
backend r3
    balance leastconn
    server s1 127.0.0.1:$P3
EOF
}
launch_haproxy() {       # launch_haproxy NAME
  TPORT=$PHA; CTL="$WORK/$1.sock"; CTL_DIALECT=haproxy
  haproxy_conf "$TPORT" "$CTL" >"$WORK/$1.cfg"
  start "$1" "$PROXY_CPU" haproxy -db -f "$WORK/$1.cfg"
}

# ---------- nginx ----------
pick_port PNG
# nginx_http2 LISTEN|SERVER: with H2=1, what turns HTTP/2 on where nginx takes
# it: a `listen ... http2` parameter before nginx 1.25.1, an `http2 on;`
# directive of the server block since (the parameter is deprecated there).
nginx_http2() {
  [ "${H2:-0}" = 1 ] || return 0
  local v new=0
  v=$(nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
  [ "$(printf '%s\n' 1.25.1 "$v" | sort -V | head -1)" = 1.25.1 ] && new=1
  case $1 in
    LISTEN) [ $new = 1 ] || echo " http2" ;;
    SERVER) [ $new = 0 ] || echo "http2 on;" ;;
  esac
}
launch_nginx() {
  TPORT=$PNG; CTL=""; CTL_DIALECT=""
  cat >"$WORK/nginx-proxy.conf" <<EOF
$USERLINE
worker_processes ${WORKERS:-1};
worker_rlimit_nofile $FDMAX;
daemon off;
pid $WORK/nginx-proxy.pid;
error_log $WORK/nginx-proxy-error.log warn;
events { worker_connections $((FDMAX - 64)); }
http {
  $TEMPS
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  proxy_max_temp_file_size 0;        # stream large bodies instead of spooling them to disk
  upstream r1 { least_conn; server 127.0.0.1:$P1; keepalive 128; keepalive_requests 1000000; }
  upstream r2 { least_conn; server 127.0.0.1:$P2; keepalive 128; keepalive_requests 1000000; }
  upstream r3 { least_conn; server 127.0.0.1:$P3; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$PNG$([ "$TLS" = 1 ] && echo " ssl$(nginx_http2 LISTEN)");
    $(nginx_http2 SERVER)
    $([ "$TLS" = 1 ] && echo "ssl_certificate $WORK/tls/site.pem; ssl_certificate_key $WORK/tls/site.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m; ssl_session_tickets on;")
    proxy_http_version 1.1;          # both needed for upstream keep-alive
    proxy_set_header Connection "";
    location ~ ^/images/ { proxy_pass http://r1; }
    location ~ ^/html/   { proxy_pass http://r2; }
    location /           { proxy_pass http://r3; }
  }
}
EOF
  start nginx "$PROXY_CPU" nginx -p "$WORK" -e "$WORK/nginx-proxy-error.log" -c "$WORK/nginx-proxy.conf"
}

# ---------- Envoy (when installed) ----------
pick_port PENV
envoy_cluster() {
  cat <<EOF
  - name: $1
    type: STATIC
    lb_policy: LEAST_REQUEST
    load_assignment:
      cluster_name: $1
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $2}}}}]}]
EOF
}
launch_envoy() {
  TPORT=$PENV; CTL=""; CTL_DIALECT=""
  cat >"$WORK/envoy.yaml" <<EOF
static_resources:
  listeners:
  - name: fe
    address: {socket_address: {address: 127.0.0.1, port_value: $PENV}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: fe
          codec_type: HTTP1
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - {match: {safe_regex: {regex: "^/images/.*"}}, route: {cluster: r1}}
              - {match: {safe_regex: {regex: "^/html/.*"}},   route: {cluster: r2}}
              - {match: {prefix: "/"},                        route: {cluster: r3}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
$(envoy_cluster r1 "$P1")
$(envoy_cluster r2 "$P2")
$(envoy_cluster r3 "$P3")
EOF
  start envoy "$PROXY_CPU" "$ENVOY" -c "$WORK/envoy.yaml" --concurrency "${WORKERS:-1}" --disable-hot-restart -l warn
}

# ---------- sozu (when installed) ----------
pick_port PSOZU
sozu_cluster() {         # sozu_cluster NAME BACKEND PATH
  cat <<EOF
[clusters.$1]
protocol = "http"
load_balancing = "LEAST_LOADED"
frontends = [{ address = "127.0.0.1:$PSOZU", hostname = "127.0.0.1", path = "$3", path_type = "PREFIX" }]
backends = [{ address = "$2" }]
EOF
}
launch_sozu() {
  TPORT=$PSOZU; CTL=""; CTL_DIALECT=""
  cat >"$WORK/sozu.toml" <<EOF
command_socket = "$WORK/sozu.sock"
log_level = "error"
log_target = "stdout"
worker_count = ${WORKERS:-1}
worker_automatic_restart = false
handle_process_affinity = false
max_connections = $((FDMAX / 2 - 64))
buffer_size = 16393
activate_listeners = true
[[listeners]]
protocol = "http"
address = "127.0.0.1:$PSOZU"
$(sozu_cluster r1 "127.0.0.1:$P1" "/images/")
$(sozu_cluster r2 "127.0.0.1:$P2" "/html/")
$(sozu_cluster r3 "127.0.0.1:$P3" "/")
EOF
  start sozu "$PROXY_CPU" "$SOZU" start -c "$WORK/sozu.toml"
}

# ---------- the floor: a 1:1 relay, no parsing, everything to r2 ----------
pick_port PFLOOR
launch_floor() {
  TPORT=$PFLOOR; CTL=""; CTL_DIALECT=""
  start floor "$PROXY_CPU" env LISTEN="127.0.0.1:$PFLOOR" BACKEND_R1="127.0.0.1:$P1" \
    BACKEND_R2="127.0.0.1:$P2" BACKEND_R3="127.0.0.1:$P3" \
    BACKEND="127.0.0.1:$P1,127.0.0.1:$P2,127.0.0.1:$P3" "$FLOOR"
}

# ---------- ktcpvs ----------
pick_port PKT; pick_port PADMIN
launch_ktcpvs() {        # launch_ktcpvs NAME SCHED [DIR]: ktcpvsd loads the config, then `tcpvsadm --start` starts the service
  local name=$1 sched=$2 ktcpvsd=$KTCPVSD tcpvsadm=$TCPVSADM opts=()
  if [ -n "${3:-}" ]; then ktcpvsd=$3/release/examples/ktcpvsd; tcpvsadm=$3/release/examples/tcpvsadm; fi
  # OBS_ON=1: the access log (JSON, access_log=2) to a file under $WORK and the
  # admin listener (/metrics), both inside ktcpvsd, so their CPU is the proxy's.
  [ "${OBS_ON:-0}" = 1 ] && opts=(--access-log "$WORK/$name.access.log" --sysctl access_log=2
                                 --admin "127.0.0.1:$PADMIN")
  # POOL_MAX_IDLE=N (scenario 11's -poolN rows): idle backend connections kept per server.
  [ -n "${POOL_MAX_IDLE:-}" ] && opts+=(--sysctl "pool_max_idle=$POOL_MAX_IDLE")
  TPORT=$PKT; CTL="$WORK/$name.sock"; CTL_DIALECT=ktcpvs
  rm -f "$CTL"
  cat >"$WORK/$name.conf" <<EOF
Virtual http {
    listen = 127.0.0.1:$PKT
    scheduler = $sched
    maxclients = 100000
    server = 127.0.0.1:$P1 1
    server = 127.0.0.1:$P2 1
    server = 127.0.0.1:$P3 1
    rule = pattern "^/images/" use server 127.0.0.1:$P1
    rule = pattern "^/html/" use server 127.0.0.1:$P2
    rule = pattern ".*" use server 127.0.0.1:$P3
$([ "$TLS" = 1 ] && echo "    certificate = \"$WORK/tls/site.pem\" key \"$WORK/tls/site.key\"")
$([ "${H2:-0}" = 1 ] && echo "    http2 = on")
}
EOF
  start "$name" "$PROXY_CPU" "$ktcpvsd" --socket "$CTL" -f "$WORK/$name.conf" \
    --workers "${WORKERS:-1}" --sysctl "zerocopy_send=${ZEROCOPY:-0}" "${opts[@]}"
  local i
  for i in $(seq 100); do [ -S "$CTL" ] && break; group_alive "$LAST" || break; sleep 0.1; done
  "$tcpvsadm" --socket "$CTL" --start >>"$WORK/$name.log" 2>&1 ||
    echo "warning: tcpvsadm --start failed (see below)" >&2
  [ "${OBS_ON:-0}" = 1 ] && start_scraper "$name"
  return 0
}

# ---------- observability rows (ktcpvs-SCHED-obs) ----------
# The scraper is a curl loop in a process group of its own on CPU 0 (with wrk
# and the backend), so its CPU is not counted as the proxy's; it GETs /metrics
# once a second from the proxy's start (warm-up and measurement) to its stop and
# logs each status code. obs_finish reads the access-log counters once at the
# end, records them, stops the scraper and deletes the log (~300 bytes a line).
OBS_G=""
start_scraper() {        # start_scraper NAME: keeps LAST (the proxy's group), sets OBS_G
  local proxy=$LAST
  start "$1-scrape" 0 bash -c 'while :; do
      curl -s -o /dev/null -w "%{http_code}\n" --max-time 1 "$0" || true; sleep 1; done' \
    "http://127.0.0.1:$PADMIN/metrics"
  OBS_G=$LAST; LAST=$proxy
}
stop_scraper() { [ -z "$OBS_G" ] || stop_group "$OBS_G"; OBS_G=""; }
obs_finish() {           # obs_finish SCEN TARGET: access-log lines and drops, scrapes; then stop the scraper
  local scen=$1 target=$2 m log="$WORK/$2.access.log" first
  m=$(curl -s --max-time 2 "http://127.0.0.1:$PADMIN/metrics" || true)
  record "$scen" "$target" log_lines "$(awk '$1=="ktcpvs_access_log_lines_total" {print $2}' <<<"$m")"
  record "$scen" "$target" log_dropped "$(awk '$1=="ktcpvs_access_log_dropped_total" {print $2}' <<<"$m")"
  record "$scen" "$target" scrapes "$(grep -c '^200$' "$WORK/$target-scrape.log" || true)"
  record "$scen" "$target" log_MiB "$(stat -c %s "$log" 2>/dev/null | awk '{printf "%.0f", $1/1048576}')"
  first=$(head -c 4096 "$log" 2>/dev/null | head -1)
  python3 -c 'import json,sys; json.loads(sys.argv[1])' "$first" 2>/dev/null ||
    echo "warning: $target: the access log's first line is not JSON: ${first:0:120}" >&2
  stop_scraper
  rm -f "$log"
}

# launch TARGET: dispatch to the launcher; the SUT rows are "ktcpvs-SCHED" or "sut-haproxy"
launch() {
  stop_scraper
  case $1 in
    haproxy|sut-haproxy) launch_haproxy "$1" ;;
    nginx) launch_nginx ;;
    envoy) launch_envoy ;;
    sozu) launch_sozu ;;
    floor) launch_floor ;;
    ktcpvs-*-obs) local x=${1#ktcpvs-}; OBS_ON=1 launch_ktcpvs "$1" "${x%-obs}" ;;
    ktcpvs-*-pool[0-9]*) local x=${1#ktcpvs-}; POOL_MAX_IDLE=${x##*-pool} launch_ktcpvs "$1" "${x%-pool*}" ;;
    ktcpvs-*) launch_ktcpvs "$1" "${1#ktcpvs-}" ;;
    base-*) launch_ktcpvs "$1" "${1#base-}" "$BASELINE" ;;
    *) echo "unknown target $1" >&2; return 1 ;;
  esac
}
# up TARGET: launch and wait until it serves; 1 if it failed (row recorded as failed)
up() {
  launch "$1" || return 1
  if wait_http "$1" "$LAST" "$SCHEME://127.0.0.1:$TPORT/html/index.html"; then
    ROUTE=$(check_routing "$SCHEME://127.0.0.1:$TPORT")
    [ "$ROUTE" = ok ] || [ "$1" = floor ] || echo "warning: $1 routing $ROUTE" >&2
    return 0
  fi
  stop_group "$LAST"; stop_scraper; return 1
}

# ---------- scenario 10: one pool of three backends, one of them sick ----------
# r1 and r2 of the backend nginx and the sick backend (sick_backend.py on
# PSICK, CPU 0 like the backend nginx), balanced across all three with no
# content rules, each proxy with its passive health (and HAProxy with the
# active check it needs to bring a marked-down server back):
#   haproxy       balance leastconn; observe layer7, error-limit 5,
#                 on-error mark-down; option httpchk GET /health, inter 1s
#   nginx         least_conn; max_fails=5 fail_timeout=10s;
#                 proxy_next_upstream error timeout http_500 (a 500 is retried
#                 on another server: the client does not see it)
#   nginx-no500   the same without http_500: 500s reach the client, and nginx
#                 counts no 500 as a failure, so it never takes the server out
#   ktcpvs-SCHED  scheduler SCHED (wlc, p2c, lrt); eject_5xx = 5,
#                 max_ejection_percent = 50
# launch_pool TARGET sets LAST, TPORT as launch does; up_pool waits for it.
pick_port PSICK
start_sick() {           # start_sick MODE (slow|fail|none): the sick backend; sets SICK_G
  local args=()
  case $1 in
    slow) args=(--delay-ms "$SICK_DELAY_MS") ;;
    fail) args=(--fail-percent "$SICK_FAIL_PERCENT") ;;
  esac
  start "sick-$1" 0 python3 "$BENCH_SRC/sick_backend.py" "$PSICK" "${args[@]}"
  SICK_G=$LAST
  wait_http "sick-$1" "$SICK_G" "http://127.0.0.1:$PSICK/health"
}
sick_count() {           # sick_count -> traffic requests the sick backend has received so far
  curl -s --max-time 2 "http://127.0.0.1:$PSICK/__count" | sed -n 's/^served=\([0-9]*\).*/\1/p'
}
launch_haproxy_pool() {  # launch_haproxy_pool NAME
  TPORT=$PHA; CTL=""; CTL_DIALECT=""
  cat >"$WORK/$1-pool.cfg" <<EOF
global
    nbthread ${WORKERS:-1}
    maxconn ${MAXCONN:-4096}
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 120s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$PHA
    default_backend pool
backend pool
    balance leastconn
    option httpchk GET /health
    default-server check inter 1s observe layer7 error-limit 5 on-error mark-down
    server r1 127.0.0.1:$P1
    server r2 127.0.0.1:$P2
    server sick 127.0.0.1:$PSICK
EOF
  start "$1-pool" "$PROXY_CPU" haproxy -db -f "$WORK/$1-pool.cfg"
}
launch_nginx_pool() {    # launch_nginx_pool NAME "NEXT_UPSTREAM"
  TPORT=$PNG; CTL=""; CTL_DIALECT=""
  local s fails="max_fails=5 fail_timeout=10s"
  cat >"$WORK/$1-pool.conf" <<EOF
$USERLINE
worker_processes ${WORKERS:-1};
worker_rlimit_nofile $FDMAX;
daemon off;
pid $WORK/$1-pool.pid;
error_log $WORK/$1-pool-error.log warn;
events { worker_connections $((FDMAX - 64)); }
http {
  $TEMPS
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  upstream pool {
    least_conn;
    server 127.0.0.1:$P1 $fails;
    server 127.0.0.1:$P2 $fails;
    server 127.0.0.1:$PSICK $fails;
    keepalive 128; keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$PNG;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_next_upstream $2;
    location / { proxy_pass http://pool; }
  }
}
EOF
  start "$1-pool" "$PROXY_CPU" nginx -p "$WORK" -e "$WORK/$1-pool-error.log" -c "$WORK/$1-pool.conf"
}
launch_ktcpvs_pool() {   # launch_ktcpvs_pool NAME SCHED
  local name=$1 sched=$2
  TPORT=$PKT; CTL="$WORK/$name-pool.sock"; CTL_DIALECT=ktcpvs
  rm -f "$CTL"
  cat >"$WORK/$name-pool.conf" <<EOF
Virtual pool {
    listen = 127.0.0.1:$PKT
    scheduler = $sched
    maxclients = 100000
    eject_5xx = 5
    max_ejection_percent = 50
    server = 127.0.0.1:$P1 1
    server = 127.0.0.1:$P2 1
    server = 127.0.0.1:$PSICK 1
}
EOF
  start "$name-pool" "$PROXY_CPU" "$KTCPVSD" --socket "$CTL" -f "$WORK/$name-pool.conf" --workers "${WORKERS:-1}"
  local i
  for i in $(seq 100); do [ -S "$CTL" ] && break; group_alive "$LAST" || break; sleep 0.1; done
  "$TCPVSADM" --socket "$CTL" --start >>"$WORK/$name-pool.log" 2>&1 ||
    echo "warning: tcpvsadm --start failed (see below)" >&2
}
launch_pool() {
  case $1 in
    haproxy) launch_haproxy_pool "$1" ;;
    nginx) launch_nginx_pool "$1" "error timeout http_500" ;;
    nginx-no500) launch_nginx_pool "$1" "error timeout" ;;
    ktcpvs-*) launch_ktcpvs_pool "$1" "${1#ktcpvs-}" ;;
    *) echo "scenario 10 has no target $1" >&2; return 1 ;;
  esac
}
up_pool() {              # up_pool TARGET: launch_pool and wait until /health answers through it
  launch_pool "$1" || return 1
  wait_http "$1-pool" "$LAST" "http://127.0.0.1:$TPORT/health" && return 0
  stop_group "$LAST"; return 1
}
