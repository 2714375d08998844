#!/usr/bin/env bash
# Runs the whole test suite (against containerd 1.6, 1.7 or 2.1: see below). The tests need a real containerd, runc and busybox-static:
# installed here with apt when missing (as root), or we stop with the command to run.
# Extra arguments go to `deno test` (e.g. a file, or --filter NAME).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

missing=()
for bin in containerd ctr runc containerd-shim-runc-v2; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# Pods with their own network namespace (the sandbox controller's tests) use CNI's bridge.
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
if [ ${#missing[@]} -gt 0 ]; then
  packages="containerd runc busybox-static systemd containernetworking-plugins"
  install="apt-get update && apt-get install -y $packages"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing ${missing[*]} ($install)" >&2
    DEBIAN_FRONTEND=noninteractive sh -c "apt-get update -qq && apt-get install -y -qq $packages" >&2
  else
    echo "test: missing ${missing[*]}; run as root: $install" >&2
    exit 1
  fi
fi
if [ "$(id -u)" != 0 ]; then
  echo "test: the tests run containers with runc and must run as root" >&2
  exit 1
fi

# PODSANDBOXD_CONTAINERD=1.6|1.7|2.1 selects the containerd the tests start (default: the
# system's 1.6); 1.7 and 2.1 are fetched into .cache/ once (scripts/containerd-versions.sh).
case "${PODSANDBOXD_CONTAINERD:-1.6}" in
  1.6) ;;
  1.7 | 2.1) "$root/scripts/containerd-versions.sh" "$PODSANDBOXD_CONTAINERD" ;;
  *)
    echo "test: PODSANDBOXD_CONTAINERD=$PODSANDBOXD_CONTAINERD: accepted are 1.6, 1.7 and 2.1" >&2
    exit 2
    ;;
esac

cd "$root"
# --expose-gc: memory tests collect garbage before they compare heap sizes.
exec "$root/scripts/deno" test --allow-all --parallel --v8-flags=--expose-gc "$@"
