#!/usr/bin/env bash
# Install what the build needs and a fresh Debian machine with rustup lacks: libclang for
# RocksDB's bindgen, rustfmt and clippy for the checks. Idempotent; one line per thing it checks.
#
#   scripts/setup.sh                   check, install what is missing
#   scripts/setup.sh --check-libclang  only say whether bindgen would find libclang (exit 0 present,
#                                      1 missing); installs nothing
#
# VTGRID_LIBCLANG_ROOTS (colon-separated directories) replaces the directories searched for
# libclang; the test of this script points it at fake trees.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root to run: $*" >&2; exit 1; fi
}

# The directories clang-sys (bindgen's loader) searches on Linux, LIBCLANG_PATH first.
libclang_roots() {
  if [ -n "${VTGRID_LIBCLANG_ROOTS:-}" ]; then
    tr ':' '\n' <<<"$VTGRID_LIBCLANG_ROOTS"
    return
  fi
  [ -n "${LIBCLANG_PATH:-}" ] && echo "$LIBCLANG_PATH"
  local d
  for d in /usr/lib/llvm-*/lib /usr/local/llvm*/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib \
    /usr/local/lib /usr/local/lib64; do
    [ -d "$d" ] && echo "$d"
  done
}

# Prints the first libclang bindgen can load, or nothing. bindgen loads libclang itself:
# libclang.so, libclang.so.N, libclang-N.so or libclang-N.so.M. libclang-cpp.so.N (the C++ API,
# shipped alone by some images) is not it, and is what an earlier `libclang*.so*` glob mistook for it.
find_libclang() {
  local root f name
  while IFS= read -r root; do
    [ -d "$root" ] || continue
    for f in "$root"/libclang*.so*; do
      [ -e "$f" ] || continue
      name=$(basename "$f")
      case "$name" in
        libclang.so | libclang.so.[0-9]* | libclang-[0-9]*.so | libclang-[0-9]*.so.[0-9]*)
          echo "$f"
          return 0
          ;;
      esac
    done
  done < <(libclang_roots)
  return 1
}

check_libclang() {
  local found
  if found=$(find_libclang); then
    echo "setup: libclang present ($found)"
    return 0
  fi
  echo "setup: libclang missing (searched: $(libclang_roots | paste -sd' ' -))"
  return 1
}

if [ "${1:-}" = "--check-libclang" ]; then
  check_libclang
  exit $?
fi

if ! check_libclang; then
  echo "setup: installing libclang-dev (RocksDB's bindgen needs it)"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq libclang-dev >/dev/null
  check_libclang || { echo "setup: libclang-dev installed, yet bindgen's libclang is not found" >&2; exit 1; }
fi

if command -v rustup >/dev/null; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" >/dev/null 2>&1 || true
  done
fi
