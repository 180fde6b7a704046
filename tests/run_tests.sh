#!/bin/sh
# Runs each Check test binary given as an argument and prints one closing line:
# "N passed, N failed". Exits non-zero when any test failed or a binary crashed.
passed=0 failed=0 status=0
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -v '^Running suite' 
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$t: crashed or printed no Check summary (exit $rc)"; failed=$((failed + 1)); status=1; continue
    fi
    checks=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
    fails=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
    errs=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
    bad=$((fails + errs))
    passed=$((passed + checks - bad)); failed=$((failed + bad))
    [ "$rc" -eq 0 ] && [ "$bad" -eq 0 ] || status=1
done
echo "$passed passed, $failed failed"
exit $status
