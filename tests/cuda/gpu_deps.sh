#!/usr/bin/env bash
# The build's C libraries for a GPU machine that has nvcc but not the Debian -dev packages and
# cannot install any (no network). Only what the code links today: cJSON, PCRE2 and utf8proc
# (libc-only dependencies); OpenBLAS and libarchive are left out until code uses them.
#
#   tests/cuda/gpu_deps.sh fetch       here: copy the .debs into .deps/ (git ignores it) from the
#                                      apt cache, or apt-get download them; then name .deps in
#                                      the device call's carry
#   eval "$(tests/cuda/gpu_deps.sh env)"   there: unpack .deps/*.deb into /tmp/deps and export
#                                      PKG_CFLAGS and PKG_LIBS, which the Makefile then uses
#                                      instead of pkg-config (libraries found through an rpath)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PKGS="libcjson1 libcjson-dev libpcre2-8-0 libpcre2-dev libutf8proc2 libutf8proc-dev"
case "${1:-}" in
fetch)
    mkdir -p "$ROOT/.deps" # ignored by .gitignore
    for p in $PKGS; do
        v=$(dpkg-query -W -f '${Version}' "$p" 2>/dev/null || true)
        f=$(ls /var/cache/apt/archives/"${p}"_*"${v#*:}"_amd64.deb 2>/dev/null | head -n 1 || true)
        if [ -n "$f" ]; then cp "$f" "$ROOT/.deps/"; else (cd "$ROOT/.deps" && apt-get download "$p"); fi
    done
    ls -la "$ROOT/.deps" >&2
    ;;
env)
    D=/tmp/deps
    mkdir -p "$D"
    for f in "$ROOT"/.deps/*.deb; do dpkg -x "$f" "$D"; done
    L=$D/usr/lib/x86_64-linux-gnu
    echo "export PKG_CFLAGS='-I$D/usr/include -I$D/usr/include/cjson'"
    echo "export PKG_LIBS='-L$L -Wl,-rpath,$L -lcjson -lpcre2-8 -lutf8proc'"
    ;;
*)
    echo "usage: $0 fetch|env" >&2
    exit 2
    ;;
esac
