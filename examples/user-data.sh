#!/bin/bash
# EC2 user data: install roleops into a venv and run the post-deploy smoke check (scripts/smoke_check.sh).
#
# Launch the instance with the instance profile (roleops setup, or `--iam-instance-profile Name=ExampleRole`),
# paste this as user data and edit the three settings below. cloud-init runs it once, as root, at first boot.
# Everything it prints goes to the console (EC2 > Instance > Monitor > Get system log, or
# `aws ec2 get-console-output --instance-id ID --latest`), to syslog (tag roleops-user-data) and to
# /var/log/roleops-user-data.log; the verify report lands in /var/log/roleops-verify.json.
# A failed check fails this script, so cloud-init reports the boot stage as failed.
set -euo pipefail
exec > >(tee -a /var/log/roleops-user-data.log | logger -t roleops-user-data -s 2>/dev/console) 2>&1

# --- edit these -------------------------------------------------------------------------------------
# A release archive of the roleops repository (it holds the package and scripts/smoke_check.sh).
ROLEOPS_SOURCE_URL="https://github.com/YOUR-ORG/roleops/archive/refs/tags/v0.1.0.tar.gz"
# The role(s) code on this instance assumes, and the instance role it must hold.
ASSUME_ROLE_ARN="arn:aws:iam::123456789012:role/ExampleAssumedRole"
EXPECT_ROLE="ExampleRole"
# ----------------------------------------------------------------------------------------------------

PREFIX=/opt/roleops
SMOKE_CHECK=/usr/local/bin/roleops-smoke-check

pick_python() {
    # roleops needs Python 3.10+ (Amazon Linux 2023's python3 is 3.9: it gets python3.11 below).
    local py
    for py in python3.13 python3.12 python3.11 python3.10 python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

echo "roleops: installing into $PREFIX"
if ! PYTHON="$(pick_python)"; then
    if command -v dnf >/dev/null 2>&1; then
        dnf install -y python3.11
    elif command -v apt-get >/dev/null 2>&1; then
        apt-get update -q && apt-get install -y -q python3 python3-venv
    fi
    PYTHON="$(pick_python)" || { echo "roleops: no Python 3.10+ on this image" >&2; exit 3; }
fi
if command -v apt-get >/dev/null 2>&1 && ! "$PYTHON" -c 'import ensurepip' >/dev/null 2>&1; then
    # Debian and Ubuntu ship venv's pip bootstrap separately, per Python version.
    apt-get install -y -q "python$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
fi

mkdir -p "$PREFIX/src"
curl -fsSL --retry 5 --retry-delay 2 -o "$PREFIX/roleops.tar.gz" "$ROLEOPS_SOURCE_URL"
tar -xzf "$PREFIX/roleops.tar.gz" -C "$PREFIX/src" --strip-components=1
"$PYTHON" -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/venv/bin/pip" install --quiet "$PREFIX/src" # boto3, botocore and rich: no sandbox, no test extras
install -m 0755 "$PREFIX/src/scripts/smoke_check.sh" "$SMOKE_CHECK"
"$PREFIX/venv/bin/roleops" --version

# IMDS may serve the role a little after boot: up to 6 tries, 10 s apart, before the check counts as failed.
echo "roleops: smoke check"
ROLEOPS_BIN="$PREFIX/venv/bin/roleops" \
    ROLEOPS_REPORT=/var/log/roleops-verify.json \
    ROLEOPS_SMOKE_ATTEMPTS=6 \
    ROLEOPS_SMOKE_DELAY=10 \
    "$SMOKE_CHECK" --assume "$ASSUME_ROLE_ARN" --expect-role "$EXPECT_ROLE"
