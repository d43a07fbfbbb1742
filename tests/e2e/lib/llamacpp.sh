# Sourced by end-to-end tests that check GGUF files against llama.cpp itself.
#
# Installs node-llama-cpp (llama.cpp prebuilt for this CPU, from npm) into its own versioned
# cache folder outside the repository on first use (under a lock, so parallel test runs share
# one install), and defines
#   llamacpp ARGS...   node tests/e2e/lib/llamacpp.mjs ARGS... against that install
#   LLAMACPP_LIBDIR    the folder holding llama.cpp's shared libraries (libggml-base.so, ...)
#   llamacpp_quantizer builds llama.cpp's quantizer (llama_model_quantize) as a program
# A failed install fails the test: llama.cpp is the reference, not an optional extra.
LLAMACPP_VERSION=3.22.1
LLAMACPP_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/r1-distill/node-llama-cpp-$LLAMACPP_VERSION
case "$(node -p process.arch)" in
    x64) LLAMACPP_PLATFORM=linux-x64 ;;
    arm64) LLAMACPP_PLATFORM=linux-arm64 ;;
    *) echo "llamacpp.sh: no prebuilt llama.cpp for $(node -p process.arch)" >&2; exit 1 ;;
esac

llamacpp_setup() {
    mkdir -p "$LLAMACPP_DIR"
    (
        flock 9
        if [ ! -f "$LLAMACPP_DIR/.installed" ]; then
            echo '{"private": true}' >"$LLAMACPP_DIR/package.json"
            # only this platform's CPU build (85 MB), not every GPU variant
            (cd "$LLAMACPP_DIR" && npm install --no-audit --no-fund --omit=optional --loglevel=error \
                "node-llama-cpp@$LLAMACPP_VERSION" "@node-llama-cpp/$LLAMACPP_PLATFORM@$LLAMACPP_VERSION") >&2
            touch "$LLAMACPP_DIR/.installed"
        fi
        # llama.cpp loads the CPU build that best fits the machine; on one with AMX (Sapphire
        # Rapids and later) that build's AMX kernels give -inf logits for the later positions of
        # a q4_k_m GGUF of the tiny trained students (export_trained: 6,300 of 37,120 logits,
        # KL infinite, where the next build down and our own reader agree within 5e-6 of the
        # HF model). The reference here is llama.cpp's ordinary kernels, so that build goes.
        rm -f "$LLAMACPP_DIR/node_modules/@node-llama-cpp/$LLAMACPP_PLATFORM"/bins/*/libggml-cpu-sapphirerapids.so
    ) 9>"$LLAMACPP_DIR.lock"
    LLAMACPP_LIBDIR=$(dirname "$(ls -d "$LLAMACPP_DIR/node_modules/@node-llama-cpp/$LLAMACPP_PLATFORM"/bins/*/libggml-base.so | head -n 1)")
    [ -f "$LLAMACPP_LIBDIR/libggml-base.so" ]
}

# llama.cpp's own llama-quantize, as a small program against the shipped libllama: prints the
# path of an executable taking IN.gguf OUT.gguf LLAMA_FTYPE. The headers come from the llama.cpp
# source bundle node-llama-cpp ships (the same release as its binaries).
llamacpp_quantizer() {
    local inc="$LLAMACPP_DIR/include" bundle="$LLAMACPP_DIR/node_modules/node-llama-cpp/llama/gitRelease.bundle"
    (
        flock 9
        if [ ! -f "$inc/llama.h" ]; then
            rm -rf "$inc.git" && git clone -q --no-checkout "$bundle" "$inc.git" 2>/dev/null
            mkdir -p "$inc"
            for h in include/llama.h ggml/include/ggml.h ggml/include/ggml-cpu.h \
                     ggml/include/ggml-backend.h ggml/include/ggml-opt.h ggml/include/gguf.h \
                     ggml/include/ggml-alloc.h; do
                git -C "$inc.git" show "HEAD:$h" >"$inc/$(basename "$h")"
            done
            rm -rf "$inc.git"
        fi
    ) 9>"$LLAMACPP_DIR.lock"
    local lib
    lib=$(ls "$LLAMACPP_LIBDIR"/libllama.*.so | head -n 1)
    cc -O1 -I"$inc" -o "$TMP/llama_quantize" "$ROOT/tests/e2e/lib/llama_quantize.c" \
        "$lib" "$(ls "$LLAMACPP_LIBDIR"/libggml.*.so | head -n 1)" -Wl,-rpath,"$LLAMACPP_LIBDIR"
    echo "$TMP/llama_quantize"
}

llamacpp() {
    NODE_LLAMA_CPP="$LLAMACPP_DIR/node_modules/node-llama-cpp" node "$ROOT/tests/e2e/lib/llamacpp.mjs" "$@"
}

llamacpp_setup
