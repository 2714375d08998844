#!/usr/bin/env bash
# Fetches the containerd builds the tests can run besides the system's 1.6 — Debian's
# 1.7 (trixie) and 2.1 (sid) — and unpacks them into .cache/containerd/ (ignored by git),
# without installing anything. A build already unpacked there is reused.
#
# Usage: scripts/containerd-versions.sh [--print-bin] [1.6|1.7|2.1 ...]   (default: 1.7 2.1)
#   --print-bin   print the directory holding containerd, ctr and the shim of each version
#                 (empty line for 1.6: the system's, found on PATH)
#
# The Debian mirror is the one this machine's apt sources name (/etc/apt/sources.list.d/
# *.sources, or /etc/apt/sources.list); PODSANDBOXD_DEBIAN_MIRROR overrides it. apt runs
# with a private configuration under the cache (its own sources list, lists and archive
# cache): the machine's apt state is not touched.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="${PODSANDBOXD_CONTAINERD_CACHE:-$root/.cache/containerd}"

# version → Debian suite and the exact package version (`apt-cache madison containerd`
# under the private configuration lists what each suite has).
suite_of() { case "$1" in 1.7) echo trixie ;; 2.1) echo sid ;; *) return 1 ;; esac; }
debian_version_of() {
  case "$1" in
    1.7) echo "1.7.24~ds1-6+deb13u1" ;;
    2.1) echo "2.1.9+ds1-5" ;;
    *) return 1 ;;
  esac
}

die() {
  echo "containerd-versions: $*" >&2
  exit 1
}

# The first Debian archive URI of the machine's apt sources (deb822 .sources first).
mirror() {
  if [ -n "${PODSANDBOXD_DEBIAN_MIRROR:-}" ]; then
    echo "$PODSANDBOXD_DEBIAN_MIRROR"
    return
  fi
  local uri=""
  shopt -s nullglob
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    # A stanza's URIs whose Suites are not the security suite.
    uri=$(awk '
      /^[[:space:]]*$/ { if (u != "" && s !~ /-security/) { print u; exit } u = ""; s = "" }
      /^URIs:/ { u = $2 }
      /^Suites:/ { s = $0 }
      END { if (u != "" && s !~ /-security/) print u }
    ' "$f" | head -n1)
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
      /etc/apt/sources.list | grep -v -- '-security' | head -n1 || true)
  fi
  [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list; set PODSANDBOXD_DEBIAN_MIRROR=URI"
  echo "$uri"
}

# Downloads and unpacks one version into $cache/<debian version>/ (atomically: unpacked
# beside it, then renamed).
fetch() {
  local version=$1 suite debver dest apt
  suite=$(suite_of "$version") || die "unknown containerd version '$version' (accepted: 1.6, 1.7, 2.1)"
  debver=$(debian_version_of "$version")
  dest="$cache/$debver"
  [ -x "$dest/usr/bin/containerd" ] && return 0

  command -v apt-get >/dev/null 2>&1 || die "apt-get and dpkg are needed to fetch containerd $debver"
  apt="$cache/apt"
  mkdir -p "$apt/lists/partial" "$apt/archives/partial"
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -r "$keyring" ] || die "$keyring is missing: apt-get install debian-archive-keyring"
  local m
  m=$(mirror)
  printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$m" trixie "$keyring" "$m" sid \
    >"$apt/sources.list"
  local opts=(
    -o "Dir::Etc::SourceList=$apt/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$apt/lists"
    -o "Dir::Cache=$apt"
    -o "Dir::Cache::archives=$apt/archives"
    -o "Dir::State::status=/dev/null"
    -o "APT::Sandbox::User=root"
    -o "Acquire::Retries=0"
  )
  # The lists are refreshed only when the wanted version is not in them yet. madison's
  # output is read whole before grep looks: `apt-cache | grep -q` under pipefail fails
  # whenever grep exits before apt-cache has written everything (SIGPIPE).
  local versions
  versions=$(apt-cache "${opts[@]}" madison containerd 2>/dev/null || true)
  if ! grep -qF "| $debver |" <<<"$versions"; then
    echo "containerd-versions: reading Debian $suite's package lists (private apt configuration in $apt)" >&2
    # --error-on=any: an unreachable mirror is otherwise only a warning.
    if ! apt-get "${opts[@]}" -qq --error-on=any update >"$apt/update.log" 2>&1; then
      cat "$apt/update.log" >&2
      die "could not read Debian's package lists (network?): the command was
  apt-get ${opts[*]} --error-on=any update
fix the network (or set PODSANDBOXD_DEBIAN_MIRROR=URI) and run again: scripts/containerd-versions.sh $version"
    fi
    versions=$(apt-cache "${opts[@]}" madison containerd)
    grep -qF "| $debver |" <<<"$versions" ||
      die "Debian $suite no longer has containerd $debver; it has: $(awk -F'|' '{print $2}' <<<"$versions" | tr -d ' ' | paste -sd' ')"
  fi
  echo "containerd-versions: downloading containerd $debver (Debian $suite)" >&2
  local work
  work=$(mktemp -d "$cache/.fetch-XXXXXX")
  # shellcheck disable=SC2064 # expand now: the path is fixed
  trap "rm -rf '$work'" EXIT
  if ! (cd "$work" && apt-get "${opts[@]}" -qq download "containerd=$debver" >"$work/download.log" 2>&1); then
    cat "$work/download.log" >&2
    die "could not download containerd $debver (network?): the command was
  (cd $work && apt-get ${opts[*]} download containerd=$debver)
fix the network and run again: scripts/containerd-versions.sh $version"
  fi
  dpkg -x "$work"/containerd_*.deb "$work/root"
  [ -x "$work/root/usr/bin/containerd" ] || die "the containerd $debver package has no usr/bin/containerd"
  rm -rf "$dest"
  mv "$work/root" "$dest"
  rm -rf "$work"
  trap - EXIT
  echo "containerd-versions: containerd $debver unpacked in $dest" >&2
}

print_bin=0
versions=()
for a in "$@"; do
  case "$a" in
    --print-bin) print_bin=1 ;;
    -h | --help)
      sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*) die "unknown option $a (see --help)" ;;
    *) versions+=("$a") ;;
  esac
done
[ ${#versions[@]} -gt 0 ] || versions=(1.7 2.1)

mkdir -p "$cache"
# Tests running in parallel may ask at once: one fetch at a time.
exec 9>"$cache/.lock"
flock 9
for v in "${versions[@]}"; do
  if [ "$v" = 1.6 ]; then
    [ "$print_bin" = 1 ] && echo ""
    continue
  fi
  fetch "$v"
  [ "$print_bin" = 1 ] && echo "$cache/$(debian_version_of "$v")/usr/bin"
done
exit 0
