#!/usr/bin/env bash
# install-deps.sh - install the Debian 12 packages the build, the chain and
# the tests need, only those that are missing.  Needs root or sudo when
# something is missing; does nothing (and needs nothing) otherwise.
set -euo pipefail

PKGS=(gcc make pkg-config libc6-dev libmicrohttpd-dev libjansson-dev
      libcurl4-openssl-dev libsqlite3-dev libpq-dev postgresql-15
      check curl python3 procps iproute2)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing+=("$p")
	fi
done
((${#missing[@]} == 0)) && exit 0

echo "install-deps: installing ${missing[*]}" >&2
if [[ $(id -u) -eq 0 ]]; then
	SUDO=()
elif command -v sudo >/dev/null; then
	SUDO=(sudo)
else
	echo "install-deps: missing packages (${missing[*]}) and neither root nor sudo; install them and rerun" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
