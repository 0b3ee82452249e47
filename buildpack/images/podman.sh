#!/usr/bin/env bash
# podman.sh ARGS... - podman with the settings the image scripts use
# (common.sh): runc, rlimits under the hard limits, the host network unless
# --network says otherwise (never the CNI bridge), the cache's storage.
#   buildpack/images/podman.sh run --rm --network slirp4netns \
#     -p 127.0.0.1:8080:8080 oci-archive:build/images/hello.oci.tar
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
containers_setup
exec podman "$@"
