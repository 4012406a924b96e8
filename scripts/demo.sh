#!/usr/bin/env bash
# Sets up a fresh Debian machine (see setup.sh) and runs postharden's main job on the
# bundled example configuration: read it, explain its relay paths, audit it, plan the
# hardening, apply the plan to a copy, and audit the copy again. Nothing outside a
# temporary directory is changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH:/usr/sbin:/sbin"

example="examples/weak"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -a "$example" "$work/postfix"

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}" || true; }

step "What Postfix reads (non-default parameters, with origins)" \
    postharden show --config-dir "$work/postfix" --non-default
step "What Postfix would silently misread" \
    postharden lint --config-dir "$work/postfix"
step "Relay paths per smtpd service" \
    postharden relay --config-dir "$work/postfix"
step "Would an outside client relay through port 25?" \
    postharden explain --config-dir "$work/postfix" --service smtp \
        --client-address 203.0.113.9 --client-name client.example.net --helo client.example.net \
        --sender someone@example.net --recipient victim@example.org
step "Audit against the runbook and checklist" \
    postharden audit --config-dir "$work/postfix"
step "Hardening plan (baseline profile) as a diff" \
    postharden plan --config-dir "$work/postfix" --profile baseline --format diff
step "Apply it to the copy (backup, atomic write, postfix check; no reload)" \
    postharden apply --config-dir "$work/postfix" --profile baseline --yes --no-reload
step "Relay paths after hardening" \
    postharden relay --config-dir "$work/postfix"
step "Audit after hardening" \
    postharden audit --config-dir "$work/postfix"
step "Backups kept for rollback" \
    postharden backups --config-dir "$work/postfix"
