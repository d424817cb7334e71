#!/usr/bin/env bash
# Runs the steps of `make test` and `make demo` one by one: says before each what it does and why
# it can take a while, keeps each step's output in a log file (it is also printed), and ends with a
# summary of what ran, how long each step took and where the logs are.
#
#   steps.sh begin   DIR                     a new run: forget the steps recorded in DIR
#   steps.sh run     DIR NAME WHY -- CMD...  run CMD as step NAME; its output is printed and kept in
#                                            DIR/NAME.log; on failure print the summary, exit as CMD
#   steps.sh summary DIR TITLE               the summary of the steps recorded in DIR
#
# DIR is kept after the run (make's is target/rangepool-logs/...). The steps are recorded in
# DIR/steps.tsv (name, seconds, status, log file).
set -uo pipefail

fmt_time() { # seconds -> "42 s" or "3 min 05 s"
    local s=$1
    if ((s < 60)); then printf '%d s' "$s"; else printf '%d min %02d s' $((s / 60)) $((s % 60)); fi
}

summary() { # DIR TITLE
    local dir=$1 title=$2 name secs status log total=0
    echo
    echo "== $title: summary"
    printf '  %-14s %-12s %-7s %s\n' STEP TIME STATUS LOG
    while IFS=$'\t' read -r name secs status log; do
        printf '  %-14s %-12s %-7s %s\n' "$name" "$(fmt_time "$secs")" "$status" "$log"
        total=$((total + secs))
    done < "$dir/steps.tsv"
    printf '  %-14s %s\n' total "$(fmt_time "$total")"
    echo "  logs: $dir/ (kept; the next run replaces them)"
}

cmd=${1:-}
case $cmd in
    begin)
        [ $# -eq 2 ] || { echo "usage: steps.sh begin DIR" >&2; exit 2; }
        mkdir -p "$2" && : > "$2/steps.tsv"
        ;;
    run)
        [ $# -ge 6 ] && [ "$5" == "--" ] || { echo "usage: steps.sh run DIR NAME WHY -- CMD..." >&2; exit 2; }
        dir=$2 name=$3 why=$4
        shift 5
        mkdir -p "$dir" && touch "$dir/steps.tsv"
        dir=$(cd "$dir" && pwd)
        log="$dir/$name.log"
        n=$(($(wc -l < "$dir/steps.tsv") + 1))
        echo
        echo "== step $n, $name: $why"
        echo "   (log: $log)"
        start=$SECONDS
        "$@" 2>&1 | tee "$log"
        status=${PIPESTATUS[0]}
        secs=$((SECONDS - start))
        if [ "$status" -eq 0 ]; then
            printf '%s\t%s\t%s\t%s\n' "$name" "$secs" ok "$log" >> "$dir/steps.tsv"
            echo "== step $n, $name: done in $(fmt_time "$secs")"
        else
            printf '%s\t%s\t%s\t%s\n' "$name" "$secs" FAILED "$log" >> "$dir/steps.tsv"
            echo "== step $n, $name: FAILED (exit status $status) after $(fmt_time "$secs"); its log: $log"
            summary "$dir" "stopped at $name"
            exit "$status"
        fi
        ;;
    summary)
        [ $# -eq 3 ] || { echo "usage: steps.sh summary DIR TITLE" >&2; exit 2; }
        summary "$(cd "$2" && pwd)" "$3"
        ;;
    *)
        echo "usage: steps.sh begin|run|summary ... (see the header of $0)" >&2
        exit 2
        ;;
esac
