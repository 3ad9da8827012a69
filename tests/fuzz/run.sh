#!/bin/sh
# Runs every fuzz target for SECONDS (default 600) on one core each, seeded
# from examples/ and the regression inputs; new crashes land in
# tests/fuzz/findings/<target>/.  Prints executions per second and corpus
# size per target.   tests/fuzz/run.sh SRCDIR BUILDDIR [SECONDS]
set -eu
src=$1 build=$2 secs=${3:-600}
# seed FILES... : copies into the corpus under names that keep their folder,
# since several folders hold files of the same name
seed() {
    for f in "$@"; do
        [ -f "$f" ] && cp "$f" "$corpus/$(basename "$(dirname "$f")")_$(basename "$f")"
    done
    return 0
}
for bin in "$build"/tests/fuzz/fuzz_*; do
    case $bin in *.o|*.log) continue ;; esac
    [ -x "$bin" ] || continue
    t=$(basename "$bin"); t=${t#fuzz_}
    corpus="$build/tests/fuzz/corpus/$t"
    find="$src/tests/fuzz/findings/$t"
    mkdir -p "$corpus" "$find" "$src/tests/fuzz/regress/$t"
    case $t in
        onnx) seed "$src"/examples/*.onnx "$src"/tests/data/onnx/*.onnx \
                   "$src"/tests/data/crafted/*.onnx "$src"/tests/data/zoo/*.onnx ;;
        npy) seed "$src"/examples/*.npy "$src"/tests/data/npy/*.npy ;;
        *) seed "$src/tests/fuzz/seeds/$t"/* ;;
    esac
    echo "== fuzz_$t for $secs s"
    "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=200000 \
        -artifact_prefix="$find/" -print_final_stats=1 \
        "$corpus" "$src/tests/fuzz/regress/$t" 2>"$build/tests/fuzz/$t.log" || true
    grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|cov:" \
        "$build/tests/fuzz/$t.log" | tail -4
    echo "corpus: $(ls "$corpus" | wc -l) files; findings: $(ls "$find" | wc -l)"
done
