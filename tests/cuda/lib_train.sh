# Shared by the GPU training scripts (sourced): a demo-shaped student and data it can learn.
#
# The student is Llama-shaped like the demo's (hidden 128, 4 layers, 2 heads of 64 sharing one
# key/value head, vocabulary 512, the tiny tokenizer), randomly initialised by `r1-distill init`.
# The data are sequences of a fixed random Markov chain over 64 tokens (four successors per
# token, probabilities .55/.25/.15/.05: about 1.1 nats per token to learn), so the loss falls
# smoothly from ln 512 = 6.2 without the sudden drops of algorithmic tasks, and two runs that
# agree step by step can be told from two that do not.

make_demo_student() {  # dir
    cat >"$TMP/demo-config.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512,
 "hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4,
 "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 64,
 "max_position_embeddings": 2048, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
 "tie_word_embeddings": true, "attention_bias": false, "mlp_bias": false,
 "bos_token_id": 316, "eos_token_id": 313, "hidden_act": "silu"}
EOF
    "$BIN" init --config "$TMP/demo-config.json" --out "$1" --seed 3 \
        --tokenizer "$ROOT/tests/fixtures/tiny-tokenizer" 2>/dev/null
}

make_markov_data() {  # file, examples, seed
    python3 - "$1" "$2" "$3" <<'PY'
import json, random, sys
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chain = random.Random(1234)  # the same chain for every file
succ = {s: chain.sample(range(32, 96), 4) for s in range(32, 96)}
r = random.Random(seed)
with open(path, "w") as f:
    for _ in range(n):
        seq = [r.randrange(32, 96)]
        for _ in range(r.randint(16, 110)):
            seq.append(r.choices(succ[seq[-1]], [0.55, 0.25, 0.15, 0.05])[0])
        ids = [316] + seq + [313]
        f.write(json.dumps({"input_ids": ids, "loss_mask": [0, 0] + [1] * (len(ids) - 2)}) + "\n")
PY
}

# The per-step training losses of a train --log file, tokens_per_s left out (it is timing).
strip_log() { grep '"loss"' "$1" | sed -e 's/, "tokens_per_s": [0-9.e+]*//' -e 's/, "host_update_s": [0-9.e+]*//'; }
