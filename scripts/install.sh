#!/usr/bin/env bash
# Installs podsandboxd on a node: the compiled binary, the systemd unit, a default config
# (never overwriting an existing one) and the podsandboxd group whose members may use the
# agent's socket. Idempotent: running it again leaves the same result.
#
# Usage: scripts/install.sh [--prefix DIR] [--destdir DIR] [--binary PATH]
#   --prefix DIR   where the binary goes under (default /usr/local → /usr/local/bin)
#   --destdir DIR  stage into DIR instead of / (packaging); the group is then left to
#                  systemd-sysusers (a sysusers.d file is installed)
#   --binary PATH  the binary to install (default dist/podsandboxd from `deno task compile`)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=/usr/local
destdir=""
binary="$root/dist/podsandboxd"

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
    --destdir=*) destdir=${1#*=}; shift ;;
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --binary=*) binary=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$prefix" in /*) ;; *) echo "install: --prefix must be absolute: $prefix" >&2; exit 2 ;; esac
if [ ! -x "$binary" ]; then
  echo "install: no executable at $binary: build it with ./scripts/deno task compile (or pass --binary PATH)" >&2
  exit 1
fi
if [ -z "$destdir" ] && [ "$(id -u)" != 0 ]; then
  echo "install: installing into / needs root (or use --destdir DIR)" >&2
  exit 1
fi

bindir="$prefix/bin"
unitdir=/etc/systemd/system
packaging="$root/scripts/packaging"

install -D -m 0755 "$binary" "$destdir$bindir/podsandboxd"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed "s#@BINDIR@#$bindir#g" "$packaging/podsandboxd.service" > "$tmp"
install -D -m 0644 "$tmp" "$destdir$unitdir/podsandboxd.service"
install -D -m 0644 "$packaging/sysusers.conf" "$destdir/usr/lib/sysusers.d/podsandboxd.conf"
if [ ! -e "$destdir/etc/podsandboxd/config.toml" ]; then
  install -D -m 0644 "$packaging/config.toml" "$destdir/etc/podsandboxd/config.toml"
else
  echo "install: keeping the existing $destdir/etc/podsandboxd/config.toml"
fi

if [ -z "$destdir" ]; then
  if ! getent group podsandboxd >/dev/null; then
    groupadd --system podsandboxd
    echo "install: created group podsandboxd"
  fi
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
  fi
  cat <<MSG
install: done. Next:
  systemctl enable --now podsandboxd
  usermod -aG podsandboxd USER    # to let USER query the agent's socket
MSG
else
  echo "install: staged into $destdir (the podsandboxd group is created by systemd-sysusers from usr/lib/sysusers.d/podsandboxd.conf)"
fi
