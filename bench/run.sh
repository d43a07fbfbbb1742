#!/usr/bin/env bash
# `make bench`: the CPU benchmarks that need nothing but this checkout, each beside its peer.
# Benchmarks report figures; they never fail the build, so a failing one is reported and the
# rest still run. The others take inputs this script cannot supply:
#   bench/gguf_quality.sh MODEL_DIR      export quality vs llama.cpp (run here on the demo student
#                                        when `make demo` has made one)
#   bench/answer_agreement.sh FILE ...   verify vs public labelled data (MATH-500, RealCritic)
#   make bench-cuda                      GPU generation and training (bench/cuda_generate.sh,
#                                        bench/cuda/*.sh), on a machine with a GPU
# bench/make_corpus.sh is a helper of bench/train_reference_lm.py, not a benchmark.
cd "$(dirname "$0")/.."
BIN=${BIN:-./r1-distill}
export BIN

run() {
    echo "== $1"
    local rc=0
    bash "bench/$1.sh" "${@:2}" || rc=$?
    [ "$rc" = 0 ] || echo "($1 did not finish: exit $rc)"
}

run tokenizer
run generate_cpu
if [ -f runs/demo/student/config.json ]; then
    run gguf_quality runs/demo/student
else
    echo "== gguf_quality: skipped (needs a trained model: run make demo first, or pass one to bench/gguf_quality.sh)"
fi
exit 0
