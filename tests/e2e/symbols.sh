#!/usr/bin/env bash
# No global symbol is defined twice across the library's objects (C and CUDA): a static archive
# would otherwise link whichever object comes first, silently (it happened: the CPU trainer's
# rmsnorm_forward and the CUDA kernels' launcher of the same name).
set -euo pipefail
cd "$ROOT"
objs=$(find build -name '*.o' -path 'build/*' ! -path 'build/tests*' ! -path 'build/bench/*' ! -name 'main.o')
[ -n "$objs" ] || { echo "no objects in build/"; exit 1; }
dups=$(for o in $objs; do nm -g --defined-only "$o" 2>/dev/null | awk '$2 ~ /[TDBR]/ {print $3}'; done |
       grep -v '^DW\.ref\.' | sort | uniq -d)
if [ -n "$dups" ]; then echo "symbols defined in more than one object:"; echo "$dups"; exit 1; fi
echo "symbols: ok ($(echo "$objs" | wc -w) objects)"
