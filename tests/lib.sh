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

# same_figures GOLD NEW NAMES: GOLD and NEW (one-line JSON objects or CSV
# files with a header) agree token for token, except that the values of the
# keys or columns in NAMES (comma-separated) may differ by a relative 1e-4.
# Those are the figures computed in float: OpenBLAS picks its sgemm kernel
# by CPU, so their last digits differ between machines; a sample dropped or
# read twice moves them by far more.  Prints the first difference.
same_figures() {
    awk -v names="$3" -v gold="$1" '
        function num(s) { return s ~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/ }
        function close_(a, b) {
            return num(a) && num(b) && (a - b <= 1e-4 * (a < 0 ? -a : a) + 1e-12) &&
                   (b - a <= 1e-4 * (a < 0 ? -a : a) + 1e-12)
        }
        BEGIN { n = split(names, l, ","); for (i = 1; i <= n; i++) loose[l[i]] = 1 }
        FNR == 1 && FILENAME == gold && /^[a-z_]/ { csv = 1; split($0, head, ",") }
        FILENAME == gold { g[FNR] = $0; ng = FNR; next }
        {
            if (!(FNR in g)) { print "extra line " FNR; bad = 1; exit }
            na = split(g[FNR], a, ","); nb = split($0, b, ",")
            if (na != nb) { print "line " FNR ": " na " fields, want " nb; bad = 1; exit }
            for (i = 1; i <= na; i++) {
                if (a[i] == b[i]) continue
                if (csv) { key = head[i]; va = a[i]; vb = b[i] }
                else {
                    key = a[i]; sub(/^[{[]*"/, "", key); sub(/".*/, "", key)
                    va = a[i]; sub(/^[^:]*:/, "", va); vb = b[i]; sub(/^[^:]*:/, "", vb)
                    sub(/[]}]+$/, "", va); sub(/[]}]+$/, "", vb)
                }
                if ((key in loose) && close_(va, vb)) continue
                print "line " FNR " field " i " (" key "): " a[i] " -> " b[i]; bad = 1; exit
            }
            seen = FNR
        }
        END { if (!bad && seen < ng) { print "missing line " seen + 1; bad = 1 } exit bad }
    ' "$1" "$2"
}

finish() {
    echo "$((checks - failures)) passed, $failures failed"
    [ "$failures" -eq 0 ]
    exit $?
}
