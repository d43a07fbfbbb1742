#!/usr/bin/env bash
# Our quantizers and dequantizers (core/quants.c) against llama.cpp's ggml, called directly:
# same bytes from the same floats, same floats from the same bytes, for Q8_0, Q4_0, Q4_1, Q5_0,
# Q5_1, Q4_K, Q5_K and Q6_K (tests/e2e/lib/quants_vs_ggml.c).
set -euo pipefail
source "$ROOT/tests/e2e/lib/llamacpp.sh"
cc -std=c11 -D_GNU_SOURCE -O2 -I"$ROOT" -o "$TMP/quants_vs_ggml" "$ROOT/tests/e2e/lib/quants_vs_ggml.c" \
    "$ROOT/core/quants.c" "$ROOT/core/dtype.c" "$ROOT/core/error.c" -ldl -lm
"$TMP/quants_vs_ggml" "$LLAMACPP_LIBDIR/libggml-base.so"
