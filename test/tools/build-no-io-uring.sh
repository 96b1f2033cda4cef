#!/usr/bin/env bash
# Builds test/tools/no-io-uring.c (a seccomp launcher that forbids io_uring like Docker's
# default profile) and prints the binary's path. Usage: build-no-io-uring.sh [OUTPUT]
# Default output: build/no-io-uring under the repository root (ignored by git).
# Exit 3 when gcc is missing, so callers can skip with a reason.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
source="$root/test/tools/no-io-uring.c"
out="${1:-$root/build/no-io-uring}"

if ! command -v gcc >/dev/null 2>&1; then
  echo "gcc not found: cannot build $out" >&2
  exit 3
fi
# Up to date: nothing to do (tests call this on every run).
if [ -x "$out" ] && [ "$out" -nt "$source" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$(dirname "$out")"
# Build beside the target and rename: parallel callers never see a half-written binary.
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
gcc -O2 -Wall -Wextra -Werror -o "$tmp" "$source"
mv -f "$tmp" "$out"
echo "$out"
