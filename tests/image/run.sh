#!/usr/bin/env bash
# run.sh - the container tests (make test-image): podman's configuration
# from buildpack/images/common.sh (runc, loopback only, the cache's
# storage), then run.py.  Arguments go to run.py.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../../buildpack/images/common.sh"
need podman runc gcc python3 debootstrap
containers_setup
exec python3 "$ZC_ROOT/tests/image/run.py" "$@"
