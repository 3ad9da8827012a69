#!/bin/sh
# Interrupted runs leave no partial output and lose no work (issue 6.4):
#  - `bitplan sensitivity` stopped by SIGINT (exit status 130) or SIGKILL
#    mid-run leaves neither its output nor any temporary file, only its
#    last checkpoint; --resume then finishes to a file byte-identical to an
#    uninterrupted run with the same seed;
#  - the exact-trace stage is checkpointed between batches: a run stopped
#    inside it resumes from the batch it reached ("exact traces: batch K of
#    N done") to the same bytes; a version-1 checkpoint (saved before
#    version 2, which added that position) still resumes to the same bytes;
#  - a checkpoint of other inputs or options, or a damaged one, is refused
#    (exit 2, one line);
#  - `bitplan sweep` stopped by SIGINT or SIGKILL while solving or while
#    writing leaves only complete files: every file in DIR is byte-identical
#    to the same file of an uninterrupted sweep, and no temporary remains.
. "$SRCDIR/tests/lib.sh"

M="$EX/cnn.onnx"
X="$EX/digits_calib_x.npy"
Y="$EX/digits_calib_y.npy"
# sampled traces (global Rademacher vectors) to a tolerance they do not
# reach before 400 samples, and power iterations: slow enough to interrupt
# after three checkpoints 0.1 s apart (1.4 s in all on a Zen 5; with 100
# samples the run took 0.4 s there, and ended before its third checkpoint
# 0.2 s apart)
OPTS="--samples 16 --trace hutchinson --scope global --tol 0.00001 --max-samples 400 --eig power --seed 7"

# wait_for FILE PID: until FILE exists (or PID has ended)
wait_for() {
    i=0
    while [ ! -e "$1" ] && kill -0 "$2" 2>/dev/null && [ $i -lt 1000 ]; do
        sleep 0.02
        i=$((i + 1))
    done
}

# wait_replaced FILE PID: until FILE is replaced by a newer one (each
# checkpoint is a new inode: written aside, then renamed over)
wait_replaced() {
    ino=$(stat -c %i "$1" 2>/dev/null)
    i=0
    while [ "$(stat -c %i "$1" 2>/dev/null)" = "$ino" ] &&
        kill -0 "$2" 2>/dev/null && [ $i -lt 1000 ]; do
        sleep 0.02
        i=$((i + 1))
    done
}

# shellcheck disable=SC2086
"$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" $OPTS -o "$TMP/ref.json" \
    2>"$TMP/ref.err" || fail "uninterrupted run: $(cat "$TMP/ref.err")"

# interrupt SIG: run in a scratch directory with the checkpoint in it,
# stop it with SIG after its third checkpoint (the first is taken after the
# exact traces, the next ones after sampling rounds), check what is left,
# resume
interrupt() {
    sig=$1 want=$2
    d="$TMP/sens_$sig"
    mkdir -p "$d"
    # shellcheck disable=SC2086
    "$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" $OPTS -o "$d/sens.json" \
        --checkpoint "$d/ck.bin" --checkpoint-every 0.1 2>"$TMP/$sig.err" &
    pid=$!
    wait_for "$d/ck.bin" $pid
    wait_replaced "$d/ck.bin" $pid
    wait_replaced "$d/ck.bin" $pid
    if kill -"$sig" $pid 2>/dev/null; then
        wait $pid
        rc=$?
        [ $rc -eq "$want" ] && pass "sensitivity SIG$sig mid-run: exit $rc" ||
            fail "sensitivity SIG$sig: exit $rc, want $want"
    else
        wait $pid
        fail "sensitivity SIG$sig: the run ended before the signal (too fast?)"
    fi
    left=$(ls -A "$d" | tr '\n' ' ')
    [ "$left" = "ck.bin " ] && pass "SIG$sig: only the checkpoint is left ($left)" ||
        fail "SIG$sig: left in the directory: '$left' (want only ck.bin)"
    # shellcheck disable=SC2086
    "$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" $OPTS -o "$d/sens.json" \
        --resume "$d/ck.bin" 2>"$TMP/$sig.res" ||
        fail "resume after SIG$sig: $(cat "$TMP/$sig.res")"
    how=$(grep '^resuming' "$TMP/$sig.res")
    case $how in
        *"all stages done"*|"") fail "SIG$sig: not interrupted mid-run: '$how'" ;;
        *) pass "SIG$sig: $how" ;;
    esac
    cmp -s "$TMP/ref.json" "$d/sens.json" &&
        pass "SIG$sig: resumed file byte-identical to the uninterrupted run" ||
        fail "SIG$sig: resumed file differs from the uninterrupted run"
    left=$(ls -A "$d" | tr '\n' ' ')
    [ "$left" = "ck.bin sens.json " ] || fail "after resume: '$left'"
}
interrupt INT 130
interrupt KILL 137

# stop_and_resume NAME WHAT OPTS...: the run of OPTS uninterrupted, then
# checkpointed at every safe point and stopped by SIGINT at its first
# checkpoint, then resumed: exit 130, a resume that succeeds, and a file
# byte-identical to the uninterrupted one.  The resume's stderr is left in
# $TMP/NAME.res for the caller to check where it went on from.
stop_and_resume() {
    name=$1; what=$2; shift 2
    "$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" "$@" -o "$TMP/$name.ref" \
        2>"$TMP/$name.referr" || fail "uninterrupted $what run: $(cat "$TMP/$name.referr")"
    d="$TMP/$name"
    mkdir -p "$d"
    "$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" "$@" -o "$d/sens.json" \
        --checkpoint "$d/ck.bin" --checkpoint-every 0 2>"$TMP/$name.err" &
    pid=$!
    wait_for "$d/ck.bin" $pid
    if kill -INT $pid 2>/dev/null; then
        wait $pid
        rc=$?
        [ $rc -eq 130 ] && pass "sensitivity SIGINT $what: exit $rc" ||
            fail "sensitivity SIGINT $what: exit $rc, want 130"
    else
        wait $pid
        fail "$what: the run ended before the signal (too fast?)"
    fi
    "$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" "$@" -o "$d/sens.json" \
        --resume "$d/ck.bin" 2>"$TMP/$name.res" ||
        fail "resume $what: $(cat "$TMP/$name.res")"
    cmp -s "$TMP/$name.ref" "$d/sens.json" &&
        pass "$what: resumed file byte-identical to the uninterrupted run" ||
        fail "$what: resumed file differs from the uninterrupted run"
}

# The exact stage between batches: trace auto makes every cnn layer exact
# by Gauss-Newton (10 classes, one backward pass per class per batch);
# --batch 1 makes 256 batches of about 2 ms each (6 ms with a save after
# each), so the first checkpoint comes long before the last batch.
EOPTS="--batch 1 --eig power --eig-iter 2 --seed 7"
# shellcheck disable=SC2086
stop_and_resume exact "inside the exact stage" $EOPTS
how=$(grep '^resuming' "$TMP/exact.res")
k=$(echo "$how" | sed -n 's/.*: exact traces: batch \([0-9]*\) of 256 done,.*/\1/p')
if [ -n "$k" ] && [ "$k" -ge 1 ] && [ "$k" -lt 256 ]; then
    pass "exact stage: $how"
else
    fail "exact stage: not resumed between two batches: '$how'"
fi

# The output-space rounds (--trace gn-hutchinson): a SIGINT among them leaves
# a checkpoint of the rounds done, which resumes to the same bytes
stop_and_resume gns "among the output-space rounds" --trace gn-hutchinson --batch 8 \
    --samples 128 --max-samples 48 --eig none --seed 3
how=$(grep '^resuming' "$TMP/gns.res")
echo "$how" | grep -q ': output-space traces: round [0-9]* done,' &&
    pass "output-space rounds: $how" ||
    fail "output-space rounds: not resumed between two rounds: '$how'"

# a version-1 checkpoint (written by bitplan before version 2, with the same
# options, once the exact traces were done) resumes to the same bytes; it
# is resumed from a copy, since --resume saves to the file it reads
cp "$TD/ckpt/cnn_exact_v1.ckpt" "$TMP/v1.ckpt"
# shellcheck disable=SC2086
"$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" $EOPTS -o "$TMP/v1.json" \
    --resume "$TMP/v1.ckpt" 2>"$TMP/v1.err" ||
    fail "resume of a version-1 checkpoint: $(cat "$TMP/v1.err")"
grep -q "^resuming .*v1.ckpt: exact traces done" "$TMP/v1.err" &&
    cmp -s "$TMP/exact.ref" "$TMP/v1.json" &&
    pass "version-1 checkpoint: resumed, byte-identical" ||
    fail "version-1 checkpoint: $(cat "$TMP/v1.err")"
v=$(od -An -tu4 -j8 -N4 "$TMP/v1.ckpt" | tr -d ' ')
[ "$v" = 3 ] && pass "version-1 checkpoint: saved again as version 3 (the newest)" ||
    fail "version-1 checkpoint: saved again as version '$v'"

# a finished checkpoint resumes to the same file without computing
# shellcheck disable=SC2086
"$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" $OPTS -o "$TMP/again.json" \
    --resume "$TMP/sens_INT/ck.bin" 2>"$TMP/again.err"
grep -q "all stages done" "$TMP/again.err" && cmp -s "$TMP/ref.json" "$TMP/again.json" &&
    pass "finished checkpoint: the same file again" ||
    fail "finished checkpoint: $(cat "$TMP/again.err")"

# refused checkpoints: other options, data, model; damaged; not one
CK="$TMP/sens_INT/ck.bin"
# shellcheck disable=SC2086
expect_error 2 "ck.bin: checkpoint was made with other options \\(seed=7, now seed=8\\)" -- \
    "$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" $OPTS --seed 8 \
    -o "$TMP/x.json" --resume "$CK"
# shellcheck disable=SC2086
expect_error 2 "ck.bin: checkpoint was made with other options \\(labels=[0-9a-f]{64}, now labels=none\\)" -- \
    "$BITPLAN" sensitivity "$M" --data "$X" $OPTS -o "$TMP/x.json" --resume "$CK"
# shellcheck disable=SC2086
expect_error 2 "ck.bin: checkpoint was made for data sha256 [0-9a-f]{64}, not [0-9a-f]{64}" -- \
    "$BITPLAN" sensitivity "$M" --data "$EX/digits_test_x.npy" --labels "$EX/digits_test_y.npy" \
    $OPTS -o "$TMP/x.json" --resume "$CK"
# shellcheck disable=SC2086
expect_error 2 "ck.bin: checkpoint was made for model sha256" -- \
    "$BITPLAN" sensitivity "$EX/cnn_op17.onnx" --data "$X" --labels "$Y" $OPTS \
    -o "$TMP/x.json" --resume "$CK"
cp "$CK" "$TMP/bad.bin"
printf 'X' | dd of="$TMP/bad.bin" bs=1 seek=300 conv=notrunc 2>/dev/null
# shellcheck disable=SC2086
expect_error 2 "bad.bin: checkpoint checksum mismatch" -- \
    "$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" $OPTS -o "$TMP/x.json" \
    --resume "$TMP/bad.bin"
head -c 200 "$CK" >"$TMP/cut.bin"
# shellcheck disable=SC2086
expect_error 2 "cut.bin: checkpoint declares [0-9]+ bytes of state, the file holds" -- \
    "$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" $OPTS -o "$TMP/x.json" \
    --resume "$TMP/cut.bin"
# shellcheck disable=SC2086
expect_error 2 "cnn.onnx: not a bitplan checkpoint" -- \
    "$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" $OPTS -o "$TMP/x.json" \
    --resume "$M"
# shellcheck disable=SC2086
expect_error 2 "missing.bin: cannot open" -- \
    "$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" $OPTS -o "$TMP/x.json" \
    --resume "$TMP/missing.bin"
[ ! -e "$TMP/x.json" ] && pass "no output after a refused checkpoint" ||
    fail "an output was written after a refused checkpoint"

# sweep: policy = solve every point, then write each file atomically (DIR
# is created only then); an interrupted sweep leaves a subset of complete
# files.  500 points: the writes (fsync'ed) take most of the time.
SW="--sensitivity $TD/ilp/cnn_sens.json --profile bops --axis size --points 500"
# shellcheck disable=SC2086
"$BITPLAN" sweep $SW -o "$TMP/sw_ref" 2>/dev/null || fail "uninterrupted sweep"
n_ref=$(ls -A "$TMP/sw_ref" | wc -l)
for sig in INT KILL; do
    for delay in 0.15 0.7; do
        d="$TMP/sw_${sig}_$delay"
        # shellcheck disable=SC2086
        "$BITPLAN" sweep $SW -o "$d" 2>/dev/null &
        pid=$!
        sleep "$delay"
        kill -"$sig" $pid 2>/dev/null
        wait $pid
        rc=$?
        bad=0
        n=0
        if [ -d "$d" ]; then
            for f in $(ls -A "$d"); do
                n=$((n + 1))
                cmp -s "$d/$f" "$TMP/sw_ref/$f" || { bad=1; echo "  partial or stray: $f"; }
            done
        fi
        [ $bad -eq 0 ] &&
            pass "sweep SIG$sig at ${delay}s (exit $rc): $n of $n_ref files, all complete" ||
            fail "sweep SIG$sig at ${delay}s: partial or temporary files in $d"
    done
done
finish
