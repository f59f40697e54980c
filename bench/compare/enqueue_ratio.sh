#!/usr/bin/env bash
# The enqueue ratio of the campaign issue: `POST /v1/emails` accepted per second by one release
# `mailroom serve` against FastAPI + arq (`fastapi_arq_enqueue.py`, one uvicorn worker), on the
# same machine with the same wrk load (`wrk -t2 -c64 -s bench/enqueue.lua`).
#
# This machine's speed moves by half from one hour to the next, and it moves both stacks, so a
# ratio is only worth something between runs taken minutes apart: the two are measured in
# alternating pairs and the median pair is the figure. For each run it also prints the CPU a
# request cost the server and Redis (from /proc and Redis's INFO cpu), which moves less.
#
#   cargo build --release --bin mailroom
#   python3 -m pip install fastapi 'uvicorn[standard]' arq email-validator   # and Debian's wrk
#   bench/compare/enqueue_ratio.sh [PAIRS]        # default 5 pairs, about 30 s each
#
# Needs a Redis on 127.0.0.1:6379 (arq's default) without persistence; mailroom's keys go under
# a prefix of their own and both stacks' keys are deleted after each run. MAILROOM_BIN picks
# another binary. MAILROOM_BENCH_STORED_KEY=1 sends with a stored key (`mailroom keys create`,
# scope emails:send, a rate limit of 100,000/s and a daily quota of 10^9, both taken in every
# push) instead of the operator key.
set -euo pipefail
cd "$(dirname "$0")/../.."

pairs="${1:-5}"
# Read here and not exported: the servers must not see it as a setting.
stored="${MAILROOM_BENCH_STORED_KEY:-}"
unset MAILROOM_BENCH_STORED_KEY
bin="${MAILROOM_BIN:-target/release/mailroom}"
prefix="enqratio$$"
script="bench/enqueue.lua"
[ -x "$bin" ] || { echo "no $bin: cargo build --release --bin mailroom" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
python3 -c 'import fastapi, uvicorn, arq, email_validator' 2>/dev/null \
  || { echo "FastAPI + arq are missing: python3 -m pip install fastapi 'uvicorn[standard]' arq email-validator" >&2; exit 1; }
redis-cli ping >/dev/null || { echo "no Redis on 127.0.0.1:6379" >&2; exit 1; }
for port in 18080 18081; do
  ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "port $port is taken: stop what listens there" >&2; exit 1; }
done

pid=""
stop() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
trap stop EXIT

clear_keys() { redis-cli --scan --pattern "$1" | xargs -r -n 1000 redis-cli del >/dev/null; }
redis_cpu() { redis-cli info cpu | awk -F: '/used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'; }
# CPU seconds of a process and its children (uvicorn's worker), in clock ticks.
ticks() { local t=0 p; for p in "$1" $(pgrep -P "$1" || true); do
  t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
wait_for() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && break; sleep 0.2; done
  curl -s -o /dev/null "$1" || { echo "nothing answered at $1" >&2; exit 1; }
  # What answers must be the process just started, not one left over on the port.
  kill -0 "$pid" 2>/dev/null || { echo "the server exited at once: is the port of $1 taken?" >&2; exit 1; }; }

# measure URL [KEY]: prints "requests/s p99 server-µs redis-µs" for 10 s after a 3 s warm-up,
# sending KEY (default bench-key).
measure() {
  local url=$1 key=${2:-bench-key} hz out t0 t1 r0 r1 n
  hz=$(getconf CLK_TCK)
  MAILROOM_BENCH_KEY="$key" wrk -t2 -c64 -d3s -s "$script" "$url" >/dev/null
  t0=$(ticks "$pid"); r0=$(redis_cpu)
  out=$(MAILROOM_BENCH_KEY="$key" wrk -t2 -c64 -d10s --latency -s "$script" "$url")
  t1=$(ticks "$pid"); r1=$(redis_cpu)
  if echo "$out" | grep -q 'Non-2xx'; then echo "$out" >&2; echo "answers other than 2xx" >&2; exit 1; fi
  n=$(echo "$out" | awk '/requests in/ { print $1 }')
  echo "$out" | awk -v n="$n" -v dt="$((t1 - t0))" -v hz="$hz" -v dr="$(echo "$r1 - $r0" | bc -l)" '
    /Requests\/sec/ { rps = $2 } / 99%/ { p99 = $2 }
    END { printf "%.0f %s %.1f %.1f\n", rps, p99, dt / hz * 1e6 / n, dr * 1e6 / n }'
}

ratios=()
printf '%-5s %-34s %-34s %s\n' pair "mailroom req/s p99 (serve, Redis µs)" "FastAPI+arq req/s p99 (app, Redis µs)" ratio
for i in $(seq 1 "$pairs"); do
  MAILROOM_API_KEYS=bench-key MAILROOM_LISTEN=127.0.0.1:18080 REDIS_URL=redis://127.0.0.1:6379 \
    MAILROOM_REDIS_PREFIX="$prefix" RUST_LOG=warn "$bin" serve >/dev/null 2>&1 &
  pid=$!
  wait_for http://127.0.0.1:18080/healthz
  key=bench-key
  if [ -n "$stored" ]; then
    key=$(REDIS_URL=redis://127.0.0.1:6379 MAILROOM_REDIS_PREFIX="$prefix" \
      MAILROOM_API_KEYS=bench-key RUST_LOG=warn "$bin" keys create --name bench --scope emails:send \
      --rate-per-second 100000 --daily-quota 1000000000 | awk '/^key: / { print $2 }')
  fi
  read -r m_rps m_p99 m_app m_redis < <(measure http://127.0.0.1:18080 "$key")
  stop; clear_keys "$prefix*"

  python3 -m uvicorn --app-dir bench/compare fastapi_arq_enqueue:app --host 127.0.0.1 --port 18081 \
    --workers 1 --no-access-log --log-level warning >/dev/null 2>&1 &
  pid=$!
  wait_for http://127.0.0.1:18081/docs
  read -r f_rps f_p99 f_app f_redis < <(measure http://127.0.0.1:18081)
  stop; clear_keys 'arq:*'

  ratio=$(echo "$m_rps / $f_rps" | bc -l)
  ratios+=("$ratio")
  printf '%-5s %-34s %-34s %.1f×\n' "$i" "$m_rps $m_p99 ($m_app, $m_redis)" "$f_rps $f_p99 ($f_app, $f_redis)" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ r[NR] = $1 } END {
  m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
  printf "median of %d pairs: %.1f× (%.1f× – %.1f×)\n", NR, m, r[1], r[NR] }'
