#!/bin/sh
# The contract checks of issue 16 item 7, for .ci/run and for people:
#
#   tools/contract/check.sh install   install the pinned AsyncAPI CLI (npm ci) under tools/contract
#   tools/contract/check.sh           install if needed, then validate docs/asyncapi.yaml with the
#                                     AsyncAPI CLI and every test vector against the CDDL of
#                                     docs/protocol.md (python -m tools.contract.cddl)
#
# The CLI lives in tools/contract/node_modules (never committed); package-lock.json pins it and
# everything it pulls in.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

die() { echo "contract: $*" >&2; exit 1; }

install() {
    if ! command -v npm >/dev/null; then
        [ "$(id -u)" = 0 ] || die "npm not found; install Node.js 20 or newer with npm"
        echo "contract: installing Node.js and npm (the AsyncAPI CLI runs on Node)" >&2
        apt-get update -qq && apt-get install -y -qq nodejs npm
    fi
    stamp="$here/node_modules/.package-lock.json"
    if [ ! -x "$here/node_modules/.bin/asyncapi" ] || [ "$here/package-lock.json" -nt "$stamp" ]; then
        echo "contract: installing the AsyncAPI CLI (npm ci in tools/contract)" >&2
        (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    fi
}

install
[ "${1:-}" = install ] && exit 0

# The CLI would post usage metrics to its makers unless its settings file says no.
ASYNCAPI_METRICS_CONFIG_PATH="$here/analytics-off.json" "$here/node_modules/.bin/asyncapi" validate "$root/docs/asyncapi.yaml" \
    --fail-severity warn
python=${PYTHON_FOR_CHECKS:-$root/.venv/bin/python}
[ -x "$python" ] || python=python3
cd "$root" && "$python" -m tools.contract.cddl
