#!/usr/bin/env bash
# Sets up a fresh Debian machine (see setup.sh) and runs the whole test suite,
# the tests against the real Postfix included. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH:/usr/sbin:/sbin"
set +e
python -m pytest -n 2 --dist loadgroup "$@"
status=$?
set -e
# pytest's 5 means "no tests ran": that is a failure of the suite, not a success.
exit "$status"
