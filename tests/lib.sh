# lib.sh - helpers for bitplan's shell tests (sourced).
# The build passes BITPLAN (the binary) and SRCDIR (the source tree).
set -u
: "${BITPLAN:?BITPLAN must point to the built bitplan}"
: "${SRCDIR:?SRCDIR must point to the source tree}"
EX="$SRCDIR/examples"
TD="$SRCDIR/tests/data"
NPYCMP="$(dirname "$BITPLAN")/tests/npycmp"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bitplan-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
failures=0
checks=0

pass() { checks=$((checks + 1)); echo "ok   $*"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL $*"; }

# expect_error CODE PATTERN -- CMD...: CMD exits CODE and prints exactly one
# line on stderr, which matches the extended regex PATTERN.
expect_error() {
    code=$1; pat=$2; shift 3
    "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    lines=$(wc -l <"$TMP/err")
    if [ "$rc" -ne "$code" ]; then
        fail "exit $rc (want $code): $* :: $(head -c 300 "$TMP/err")"
    elif [ "$lines" -ne 1 ]; then
        fail "$lines stderr lines (want 1): $* :: $(head -c 300 "$TMP/err")"
    elif ! grep -Eq -- "$pat" "$TMP/err"; then
        fail "message does not match /$pat/: $(cat "$TMP/err")"
    else
        pass "exit $code: $(cat "$TMP/err")"
    fi
}

finish() {
    echo "$((checks - failures)) passed, $failures failed"
    [ "$failures" -eq 0 ]
    exit $?
}
