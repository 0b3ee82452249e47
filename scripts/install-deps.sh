#!/usr/bin/env bash
# install-deps.sh - install the Debian 12 packages the build, the chain and
# the tests need, only those that are missing.  Needs root or sudo when
# something is missing; does nothing (and needs nothing) otherwise.
set -euo pipefail

PKGS=(gcc make pkg-config libc6-dev libmicrohttpd-dev libjansson-dev
      libcurl4-openssl-dev libsqlite3-dev libpq-dev libsqlite3-0 zlib1g-dev
      check curl python3 python3-yaml procps iproute2)
# --postgres: also the PostgreSQL 15 server and client, for the tests and
# `make run-postgres` (`make run` needs neither: its state is SQLite).
if [[ "${1:-}" == --postgres ]]; then
	PKGS+=(postgresql-15 postgresql-client-15)
fi
# Node.js and npm for the tests' OTLP receiver (tests/otlp), unless a node
# is already there (say, NodeSource's, which bundles npm)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	PKGS+=(nodejs npm)
fi

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
