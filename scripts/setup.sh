#!/usr/bin/env bash
# Installs what postharden and its tests need on a fresh Debian machine:
# Postfix and its map types, swaks, pflogsumm, Dovecot (SASL), postgrey (policy service),
# then a virtualenv in .venv with postharden and its test tools.
# As root it installs the Debian packages; otherwise it checks they are there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(postfix postfix-pcre postfix-lmdb swaks pflogsumm dovecot-core postgrey
              openssl ca-certificates util-linux procps)
NEEDED_COMMANDS=(postconf postfix smtp-sink swaks pflogsumm doveadm postgrey openssl script)

missing=()
for cmd in "${NEEDED_COMMANDS[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing ${missing[*]}; run as root to install: ${DEB_PACKAGES[*]}" >&2
        exit 2
    fi
    echo "setup: installing Debian packages (${missing[*]} missing)" >&2
    # Postfix asks a debconf question; "No configuration" leaves /etc/postfix alone.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # Do not let package scripts start daemons (postgrey, dovecot): tests start their own.
    policy_rc=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy_rc" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy_rc"; chmod 755 "$policy_rc"; created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${DEB_PACKAGES[@]}" >/dev/null
    [ "$created_policy" = 1 ] && rm -f "$policy_rc"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test,tls]'
# An editable install has no byte code, and PYTHONDONTWRITEBYTECODE (set on some machines)
# would keep it that way: compile once so every command starts fast.
.venv/bin/python -m compileall -q src >/dev/null
echo "setup: ready ($(.venv/bin/postharden --version), Postfix $(postconf -dh mail_version))" >&2
