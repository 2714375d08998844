#!/usr/bin/env bash
# Regenerates src/gen/ from src/proto/ with pinned buf and ts-proto from npm (offline
# once installed; no remote plugins). The generated code is committed; nothing reads
# a .proto file at run time.
set -euo pipefail

BUF_VERSION=1.75.0
TS_PROTO_VERSION=2.18.0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools/gen-buf$BUF_VERSION-tsproto$TS_PROTO_VERSION"

if [ ! -x "$tools/node_modules/.bin/buf" ] || [ ! -x "$tools/node_modules/.bin/protoc-gen-ts_proto" ]; then
  echo "gen: installing @bufbuild/buf@$BUF_VERSION and ts-proto@$TS_PROTO_VERSION into $tools" >&2
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-save --no-audit --no-fund --loglevel=error \
    "@bufbuild/buf@$BUF_VERSION" "ts-proto@$TS_PROTO_VERSION" >&2
fi

rm -rf "$root/src/gen"
cd "$root/src/proto"
PATH="$tools/node_modules/.bin:$PATH" buf generate
# Generated code is formatted by deno fmt like the rest, so `fmt --check` stays clean.
"$root/scripts/deno" fmt --quiet "$root/src/gen"
echo "gen: wrote $(find "$root/src/gen" -name '*.ts' | wc -l) files under src/gen" >&2
