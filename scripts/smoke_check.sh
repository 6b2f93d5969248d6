#!/usr/bin/env bash
# roleops post-deploy smoke check, for EC2 user data, SSM Run Command or CI, run on the instance.
#
# Runs `roleops verify --output json` (passing its arguments through), keeps the JSON report in a file, prints
# one PASS/FAIL line on stderr and exits with verify's code: 0 every link holds, 1 a link is broken,
# 2 bad input, 3 environment problem (no metadata service, no roleops, ...).
#
# Usage: smoke_check.sh [--report FILE] [VERIFY OPTIONS...]
#   e.g. smoke_check.sh --assume arn:aws:iam::123456789012:role/ExampleAssumedRole --expect-role ExampleRole
#
# Environment:
#   ROLEOPS_REPORT          where the JSON report goes (default /var/log/roleops-verify.json; --report wins)
#   ROLEOPS_BIN             the roleops executable (default: `roleops` on PATH, e.g. /opt/roleops/bin/roleops)
#   ROLEOPS_SMOKE_ATTEMPTS  run verify up to this many times while it exits 1 or 3 (default 1). Right after
#                           boot or an association, IMDS may not serve the role yet; AWS gives no bound.
#   ROLEOPS_SMOKE_DELAY     seconds between attempts (default 10)
# botocore's settings (AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_METADATA_SERVICE_TIMEOUT, ...) reach roleops.
#
# The report is verify's JSON ({"ok", "steps": [...]}); when verify printed none (exit 2 or 3) it is
# {"ok": false, "exit_code": N, "error": "...", "steps": []}. It never holds a secret: verify prints none.
set -euo pipefail

readonly PROG="roleops-smoke"
report="${ROLEOPS_REPORT:-/var/log/roleops-verify.json}"
roleops_bin="${ROLEOPS_BIN:-roleops}"
attempts="${ROLEOPS_SMOKE_ATTEMPTS:-1}"
delay="${ROLEOPS_SMOKE_DELAY:-10}"

usage_error() {
    echo "$PROG: error: $1" >&2
    exit 2
}

verify_args=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --report)
            [ "$#" -ge 2 ] && [ -n "$2" ] || usage_error "--report needs a file name"
            report="$2"
            shift 2
            ;;
        --report=*)
            report="${1#--report=}"
            [ -n "$report" ] || usage_error "--report needs a file name"
            shift
            ;;
        --output | --output=*)
            usage_error "the smoke check sets --output json itself; do not pass --output"
            ;;
        -h | --help)
            sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
            exit 0
            ;;
        --)
            shift
            verify_args+=("$@")
            break
            ;;
        *)
            verify_args+=("$1")
            shift
            ;;
    esac
done

case "$attempts" in
    '' | *[!0-9]* | 0) usage_error "ROLEOPS_SMOKE_ATTEMPTS must be a whole number >= 1, not '$attempts'" ;;
esac
case "$delay" in
    '' | *[!0-9]*) usage_error "ROLEOPS_SMOKE_DELAY must be a whole number of seconds, not '$delay'" ;;
esac

# Check where the report goes before running anything: a smoke check whose result is lost is no check.
report_dir="$(dirname -- "$report")"
mkdir -p -- "$report_dir" 2>/dev/null ||
    usage_error "cannot create the report directory $report_dir (set ROLEOPS_REPORT or --report)"
tmp_report="$(mktemp "$report_dir/.roleops-verify.XXXXXX" 2>/dev/null)" ||
    usage_error "cannot write the report in $report_dir (set ROLEOPS_REPORT or --report)"
tmp_err="$(mktemp "${TMPDIR:-/tmp}/roleops-smoke-err.XXXXXX")"
trap 'rm -f -- "$tmp_report" "$tmp_err"' EXIT

json_string() {
    # A JSON string literal of $1: one line, control characters dropped, backslash and quote escaped.
    local s
    s="$(printf '%s' "$1" | tr -d '\000-\037')"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    printf '"%s"' "$s"
}

run_verify() {
    # Bash 4.2 (Amazon Linux 2) treats an empty "${a[@]}" as unbound under set -u: hence the ${a[@]+...} form.
    "$roleops_bin" verify --output json ${verify_args[@]+"${verify_args[@]}"} >"$tmp_report" 2>"$tmp_err"
}

rc=0
attempt=1
failed_step=""
error_line=""
passed=0
warned=0
while :; do
    rc=0
    if command -v -- "$roleops_bin" >/dev/null 2>&1; then
        run_verify || rc=$?
    else
        echo "roleops: error: $roleops_bin not found; install roleops or set ROLEOPS_BIN" >"$tmp_err"
        : >"$tmp_report"
        rc=3
    fi
    cat -- "$tmp_err" >&2 # verify's own diagnostics reach the console log too
    if [ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || [ "$attempt" -ge "$attempts" ]; then
        break
    fi
    echo "$PROG: attempt $attempt/$attempts failed (exit $rc); retrying in ${delay}s" >&2
    attempt=$((attempt + 1))
    sleep "$delay"
done

if [ -s "$tmp_report" ]; then
    # verify's JSON is indented one key per line; pick the first failed step and count the rest.
    failed_step="$(awk -F'"' '$2 == "step" { s = $4 } $2 == "status" && $4 == "fail" { print s; exit }' "$tmp_report")"
    passed="$(grep -c '"status": "pass"' "$tmp_report" || true)"
    warned="$(grep -c '"status": "warn"' "$tmp_report" || true)"
else
    error_line="$(grep -v '^[[:space:]]*$' "$tmp_err" | tail -n 1 || true)"
    error_line="${error_line:-roleops verify printed no report}"
    printf '{"ok": false, "exit_code": %d, "error": %s, "steps": []}\n' "$rc" "$(json_string "$error_line")" \
        >"$tmp_report"
fi
chmod 0644 "$tmp_report"
mv -f -- "$tmp_report" "$report"

if [ "$rc" -eq 0 ]; then
    echo "$PROG: PASS (report $report): $passed steps passed, $warned warnings" >&2
elif [ -n "$failed_step" ]; then
    echo "$PROG: FAIL (exit $rc, report $report): broken link $failed_step" >&2
else
    echo "$PROG: FAIL (exit $rc, report $report): ${error_line#roleops: error: }" >&2
fi
exit "$rc"
