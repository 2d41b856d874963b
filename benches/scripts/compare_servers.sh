#!/usr/bin/env bash
# Compares ledger-server builds under ledger-load, alternating them so this
# machine's drift (±10–15% between minutes) falls on both alike. Each run
# starts the build on a fresh data directory, sets the ledger up, drives it,
# and reads the server's CPU time from /proc before stopping it. Prints one
# line per run; compare the builds pair by pair, not run against run.
#
#   benches/scripts/compare_servers.sh [--mode single|batch] [--rounds N]
#       [--seconds S] [--load LEDGER_LOAD] SERVER [SERVER ...]
#
# SERVER and LEDGER_LOAD are release binaries: `cargo build --release -p api`
# builds target/release/ledger-server (copy each version aside), and
# `cargo build --release -p benches --bin ledger-load` the load generator
# (the default LEDGER_LOAD). Needs Linux (/proc) and curl.
set -euo pipefail

mode=single rounds=3 seconds=15 load=target/release/ledger-load
servers=()
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) mode=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --load) load=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) servers+=("$1"); shift ;;
    esac
done
[ ${#servers[@]} -ge 1 ] || { echo "name at least one server binary" >&2; exit 2; }
for binary in "${servers[@]}" "$load"; do
    [ -x "$binary" ] || { echo "$binary is not an executable" >&2; exit 2; }
done
case "$mode" in
    single) load_args=(--connections 256) ;;
    batch) load_args=(--mode batch --batch-size 1000 --connections 8) ;;
    *) echo "--mode is single or batch" >&2; exit 2 ;;
esac

listen=127.0.0.1:18181
key=compare-servers
running=
trap '[ -n "$running" ] && kill "$running" 2>/dev/null' EXIT
ticks=$(getconf CLK_TCK)

# CPU seconds of a process or thread: utime + stime from its stat file.
cpu_seconds() {
    awk -v ticks="$ticks" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / ticks }' "$1"
}

# The value of a key in ledger-load's report (pretty JSON, a key a line).
field() {
    grep -m1 "\"$1\":" <<<"$2" | sed 's/.*: *//; s/,$//'
}

run() {
    local server=$1 round=$2 directory pid report
    directory=$(mktemp -d)
    LEDGER_ADMIN_KEY=$key "$server" --data-dir "$directory" --listen "$listen" \
        --expiry-interval-seconds 0 >"$directory.log" 2>&1 &
    pid=$!
    running=$pid
    for _ in $(seq 1 200); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$server stopped before it was ready:" >&2
            head -3 "$directory.log" >&2
            rm -rf "$directory" "$directory.log"
            exit 1
        fi
        curl -sf -o /dev/null "http://$listen/readyz" && break
        sleep 0.1
    done
    report=$("$load" --url "http://$listen" --key "$key" --setup "${load_args[@]}" \
        --seconds "$seconds")
    local total writer workers=0 thread
    total=$(cpu_seconds "/proc/$pid/stat")
    writer=0
    for thread in /proc/"$pid"/task/*; do
        case "$(cat "$thread/comm")" in
            ledger-writer) writer=$(cpu_seconds "$thread/stat") ;;
            tokio-rt-worker) workers=$(awk -v a="$workers" -v b="$(cpu_seconds "$thread/stat")" 'BEGIN { printf "%.2f", a + b }') ;;
        esac
    done
    local peak
    peak=$(awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$pid/status")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    running=
    rm -rf "$directory" "$directory.log"
    # The CPU figures include the set-up's few requests. The workers' CPU is
    # per request in single mode, per command in batch mode.
    awk -v server="$(basename "$server")" -v round="$round" -v mode="$mode" \
        -v requests="$(field requests_per_second "$report")" \
        -v commands="$(field commands_per_second "$report")" \
        -v elapsed="$(field seconds "$report")" \
        -v p50="$(field p50 "$report")" -v p99="$(field p99 "$report")" \
        -v total="$total" -v writer="$writer" -v workers="$workers" -v peak="$peak" 'BEGIN {
            unit = mode == "batch" ? "command" : "request"
            done = (mode == "batch" ? commands : requests) * elapsed
            printf "%-24s round %d  %9.0f requests/s %9.0f commands/s  p50 %7.2f ms  p99 %7.2f ms  server CPU %5.1f s (writer %4.1f; HTTP workers %.1f us a %s)  peak %d MB\n",
                server, round, requests, commands, p50, p99, total, writer,
                workers / (done > 0 ? done : 1) * 1e6, unit, peak
        }'
}

for round in $(seq 1 "$rounds"); do
    for server in "${servers[@]}"; do
        run "$server" "$round"
    done
done
