#!/usr/bin/env bash
# install-deps.sh - the Debian 12 packages `make image`, `make test-buildpack`
# and `make test-image` use, installed only when missing (root or sudo).
# No Docker engine: podman with runc runs the containers, debootstrap makes
# the build image; the OCI images are written by lifecycle/ocilayout.py.
# The store's headers (libsqlite3-dev, libpq-dev) are for bin/build run on
# this machine by make test-buildpack; postgresql-15 and its client (psql)
# for the image tests that keep state in a private PostgreSQL
# (tests/pg/pg.sh).
set -euo pipefail

PKGS=(podman runc conmon slirp4netns debootstrap
      gcc make pkg-config libc6-dev libmicrohttpd-dev libjansson-dev
      libcurl4-openssl-dev libsqlite3-dev libpq-dev binutils file curl
      python3 ca-certificates postgresql-15 postgresql-client-15)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing+=("$p")
	fi
done
((${#missing[@]} == 0)) && exit 0

echo "deps-image: installing ${missing[*]}" >&2
if [[ $(id -u) -eq 0 ]]; then
	SUDO=()
elif command -v sudo >/dev/null; then
	SUDO=(sudo)
else
	echo "deps-image: missing packages (${missing[*]}) and neither root nor sudo; install them and rerun" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
