#!/usr/bin/env bash
# quick.sh: a first side-by-side reading of cairn and etcd 3.6 with etcd's own
# benchmark tool. Both servers run on this machine with the same flags and
# their data on the same disk; each workload runs ROUNDS times against each,
# alternating, and the median requests/s and p99 latency are printed with the
# cairn/etcd ratio.
#
#   bench/quick.sh            # ROUNDS=3 by default
#   ROUNDS=5 bench/quick.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench.XXXXXX")
BIN=$WORK/bin
mkdir -p "$BIN"
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

echo "building cairn, etcd v3.6.16 and etcd's benchmark tool..." >&2
go build -o "$BIN/cairn" ./cmd/cairn
(cd tests/tools/etcd && go build -o "$BIN/etcd" .)
(cd bench/tools/benchmark && go build -o "$BIN/benchmark" .)

start() { # name binary client-port peer-port
  local name=$1 bin=$2 cp=$3 pp=$4 sub=()
  [ "$name" = cairn ] && sub=(serve)
  "$bin" "${sub[@]}" --name "$name" --data-dir "$WORK/$name.data" \
    --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "$name=http://127.0.0.1:$pp" --log-level error >"$WORK/$name.log" 2>&1 &
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$cp/health" >/dev/null && return 0
    sleep 0.1
  done
  echo "$name did not start" >&2; cat "$WORK/$name.log" >&2; exit 1
}
start cairn "$BIN/cairn" 32379 32380
start etcd "$BIN/etcd" 42379 42380
declare -A EP=([cairn]=127.0.0.1:32379 [etcd]=127.0.0.1:42379)

# name|benchmark arguments
WORKLOADS=(
  "put, 1 client|--conns=1 --clients=1 put --key-size=8 --val-size=256 --total=4000"
  "put, 100 clients/10 conns|--conns=10 --clients=100 put --key-size=8 --val-size=256 --total=60000"
  "put, 1000 clients/100 conns|--conns=100 --clients=1000 put --key-size=8 --val-size=256 --total=100000"
  "range 1 key, linearizable, 100 clients|--conns=10 --clients=100 range foo --consistency=l --total=100000"
  "range 1 key, serializable, 100 clients|--conns=10 --clients=100 range foo --consistency=s --total=100000"
)
# Give the range workloads a key to read.
for s in cairn etcd; do
  "$BIN/cairn" put --endpoints "${EP[$s]}" foo bar >/dev/null
done

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

printf "%-42s %12s %12s %7s %10s %10s\n" "workload" "cairn req/s" "etcd req/s" "ratio" "cairn p99" "etcd p99"
for w in "${WORKLOADS[@]}"; do
  name=${w%%|*}; args=${w#*|}
  declare -A RPS=() P99=()
  for r in $(seq "$ROUNDS"); do
    for s in cairn etcd; do
      # shellcheck disable=SC2086
      out=$("$BIN/benchmark" --endpoints "${EP[$s]}" $args 2>&1)
      RPS[$s]+="$(grep 'Requests/sec' <<<"$out" | awk '{print $2}') "
      P99[$s]+="$(grep '99% in' <<<"$out" | awk '{print $3}') "
    done
  done
  cr=$(tr ' ' '\n' <<<"${RPS[cairn]}" | grep . | median)
  er=$(tr ' ' '\n' <<<"${RPS[etcd]}" | grep . | median)
  cp=$(tr ' ' '\n' <<<"${P99[cairn]}" | grep . | median)
  ep=$(tr ' ' '\n' <<<"${P99[etcd]}" | grep . | median)
  printf "%-42s %12.0f %12.0f %7.2f %9.1fms %9.1fms\n" "$name" "$cr" "$er" "$(awk -v a="$cr" -v b="$er" 'BEGIN{print a/b}')" \
    "$(awk -v a="$cp" 'BEGIN{print a*1000}')" "$(awk -v a="$ep" 'BEGIN{print a*1000}')"
  unset RPS P99
done
