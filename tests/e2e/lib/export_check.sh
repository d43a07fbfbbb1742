# Sourced by the export_* end-to-end tests: export one model to every GGUF type and hold each
# file against llama.cpp itself and against the unquantized model. Needs BIN, ROOT, TMP.
#
#   export_check MODEL_DIR LAYERS TIED EXACT
#
# For every type (f32 f16 bf16 q8_0 q4_0 q4_k_m q5_k_m q6_k):
#   - `r1-distill export` writes it; llama.cpp loads it and returns logits over a text
#   - the metadata llama.cpp's GGUF reader sees (file type, tokenizer, padding tokens), and
#     llama.cpp's tokenization of a chat prompt and a text equals `r1-distill tokenize`'s
#   - every tensor's type is the one llama-quantize's mix gives (rules restated below)
#   - mean KL(unquantized HF model || llama.cpp on the file) and top-1 agreement, reported, and
#     the same for our own GGUF reader (`r1-distill logits --model FILE.gguf`); the two KLs
#     must agree (our dequantization reads the blocks as llama.cpp does)
# and for f32 and f16, llama.cpp's greedy continuation of a chat-formatted prompt equals ours
# token for token. EXACT=1: our f32 GGUF logits equal the HF directory's bit for bit.
QUANTS="f32 f16 bf16 q8_0 q4_0 q4_k_m q5_k_m q6_k"
source "$ROOT/tests/e2e/lib/llamacpp.sh"

PROMPT=$'<｜User｜>What is 12 + 35? Think step by step.<｜Assistant｜><think>\n'
TEXT=$'<｜User｜>What is 12 + 35? Think step by step.<｜Assistant｜><think>\nFirst add the tens: 10 + 30 = 40. Then the ones: 2 + 5 = 7. So 40 + 7 = 47, and 47 - 35 = 12 checks it.\n</think>\n\nThe answer is 47.<｜end▁of▁sentence｜>'
N_GREEDY=16

fail() { echo "FAIL: $*" >&2; exit 1; }

# llama.cpp's llama_tensor_get_type for dense models, restated: TYPE of tensor NAME in layer L
# of N, row length NE0, for --quant Q (see convert/quant_mix.c for the sources).
block_of() { case $1 in Q4_K|Q5_K|Q6_K) echo 256 ;; Q8_0|Q4_0|Q5_0|Q5_1) echo 32 ;; *) echo 1 ;; esac; }
more_bits() { local i=$1 n=$2; (( i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2 )); }
expected_type() {
    local q=$1 name=$2 layer=$3 n=$4 tied=$5 ne0=$6 t
    case $q in f32) echo F32; return ;; f16) echo F16; return ;; bf16) echo BF16; return ;; esac
    case $q in q8_0) t=Q8_0 ;; q4_0) t=Q4_0 ;; q4_k_m) t=Q4_K ;; q5_k_m) t=Q5_K ;; q6_k) t=Q6_K ;; esac
    local base=$t
    if [ "$name" = output.weight ] || { [ "$tied" = 1 ] && [ "$name" = token_embd.weight ]; }; then
        if (( ne0 % $(block_of $base) )); then t=Q8_0; elif [ $base != Q8_0 ]; then t=Q6_K; fi
    elif [[ $name == *.attn_v.weight || $name == *.ffn_down.weight ]]; then
        if [[ $q == q4_k_m || $q == q5_k_m ]] && more_bits "$layer" "$n"; then t=Q6_K; fi
    fi
    if (( ne0 % $(block_of $t) )); then
        case $t in Q4_K) t=Q5_0 ;; Q5_K) t=Q5_1 ;; Q6_K) t=Q8_0 ;; *) t=F16 ;; esac
        if (( ne0 % $(block_of $t) )); then t=F16; fi
    fi
    echo $t
}

# KL bounds against the unquantized model: generous (random weights make every type look worse
# than on a trained model; bench/gguf_quality.sh measures a trained one), tight enough that a
# wrong block layout (KL of order 1 or more) fails.
kl_bound() { case $1 in f32) echo 1e-9 ;; f16) echo 1e-4 ;; bf16) echo 1e-3 ;; q8_0) echo 0.01 ;;
                       q6_k) echo 0.05 ;; q5_k_m) echo 0.15 ;; *) echo 0.5 ;; esac; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" "$2"; }

export_check() {
    local M=$1 LAYERS=$2 TIED=$3 EXACT=$4
    local V greedy_types=""
    for q in f32 f16; do [[ " $QUANTS " == *" $q "* ]] && greedy_types+=" $q"; done
    V=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["vocab_size"])' "$M/config.json")
    for q in $QUANTS; do
        extra=()
        [ $q = q4_k_m ] && extra=(--modelfile "$TMP/Modelfile")
        "$BIN" export --model "$M" --out "$TMP/m-$q.gguf" --quant $q "${extra[@]}" 2>"$TMP/export-$q.log" ||
            { cat "$TMP/export-$q.log"; fail "export --quant $q"; }
    done
    if [[ " $QUANTS " == *" q4_k_m "* ]]; then
        grep -q "^FROM ./m-q4_k_m.gguf$" "$TMP/Modelfile" || fail "Modelfile FROM line"
    fi

    # llama.cpp, in one process: tokenize, metadata and tensor types as its GGUF reader sees
    # them, logits over the text for every type, greedy continuations for f32 and f16
    printf '%s' "$PROMPT" >"$TMP/prompt.txt"
    printf '%s' "$TEXT" >"$TMP/text.txt"
    {
        echo "tokenize $TMP/m-f32.gguf $TMP/prompt.txt > $TMP/prompt.ids"
        echo "tokenize $TMP/m-f32.gguf $TMP/text.txt > $TMP/text.ids"
        for q in $QUANTS; do
            echo "types $TMP/m-$q.gguf > $TMP/types-$q"
            echo "meta $TMP/m-$q.gguf > $TMP/meta-$q"
            echo "logits $TMP/m-$q.gguf @$TMP/text.ids $TMP/lc-$q.f32 > $TMP/lc-$q.log"
        done
        for q in $greedy_types; do echo "greedy $TMP/m-$q.gguf @$TMP/prompt.ids $N_GREEDY > $TMP/greedy-$q"; done
    } >"$TMP/jobs1"
    llamacpp batch "$TMP/jobs1"
    local prompt text bos
    prompt=$(cat "$TMP/prompt.ids")
    text=$(cat "$TMP/text.ids")
    bos=$(sed -n 's/^tokenizer.ggml.bos_token_id=//p' "$TMP/meta-f32")
    [ "${prompt%%,*}" = "$bos" ] || fail "llama.cpp does not start the prompt with BOS $bos: $prompt"
    # the R1 specials are single tokens: <｜User｜> and <｜Assistant｜><think> from the tokenizer
    local user asst think
    special_id() {
        python3 -c 'import json, sys
print([a["id"] for a in json.load(open(sys.argv[1]))["added_tokens"] if a["content"] == sys.argv[2]][0])' "$M/tokenizer.json" "$1"
    }
    user=$(special_id "<｜User｜>")
    asst=$(special_id "<｜Assistant｜>")
    think=$(special_id "<think>")
    [[ $prompt == "$bos,$user,"*",$asst,$think,"* ]] || fail "prompt tokens $prompt (User $user, Assistant $asst, think $think)"
    # llama.cpp, reading the tokenizer from the GGUF metadata, tokenizes as our tokenizer (the
    # HF tokenizer's equal) does from tokenizer.json. BOS: llama.cpp adds it when
    # tokenizer.ggml.add_bos_token says so (tokenizer_config.json's add_bos_token, as
    # convert_hf_to_gguf writes it), `tokenize --add-special` when the post-processor does
    for f in prompt text; do
        local ours
        ours=$("$BIN" tokenize --tokenizer "$M" --add-special <"$TMP/$f.txt" | tr ' ' ',')
        [[ $ours == "$bos,"* ]] || ours="$bos,$ours"
        [ "$ours" = "$(cat "$TMP/$f.ids")" ] || fail "$f: llama.cpp $(cat "$TMP/$f.ids"), r1-distill tokenize $ours"
    done

    for q in $QUANTS; do
        local ft
        ft=$(sed -n 's/^general.file_type=//p' "$TMP/meta-$q")
        case $q in f32) [ "$ft" = 0 ] ;; f16) [ "$ft" = 1 ] ;; bf16) [ "$ft" = 32 ] ;; q8_0) [ "$ft" = 7 ] ;;
                    q4_0) [ "$ft" = 2 ] ;; q4_k_m) [ "$ft" = 15 ] ;; q5_k_m) [ "$ft" = 17 ] ;;
                    q6_k) [ "$ft" = 18 ] ;; esac || fail "$q: general.file_type $ft"
        grep -q '^general.quantization_version=2$' "$TMP/meta-$q" || fail "$q: quantization_version"
        grep -q '^tokenizer.ggml.model="gpt2"$' "$TMP/meta-$q" || fail "$q: tokenizer model"
        grep -q '^tokenizer.ggml.add_bos_token=true$' "$TMP/meta-$q" || fail "$q: add_bos_token"
        grep -q '^tokenizer.chat_template="' "$TMP/meta-$q" || fail "$q: chat template"
        # every tensor's type
        local n=0
        while read -r name type dims; do
            local ne0=${dims%%x*} layer=-1
            [[ $name =~ ^blk\.([0-9]+)\. ]] && layer=${BASH_REMATCH[1]}
            local want=F32
            [[ $name == *.weight && $dims == *x* ]] && want=$(expected_type $q "$name" $layer $LAYERS $TIED "$ne0")
            [ "$type" = "$want" ] || fail "$q: $name is $type, llama-quantize would give $want"
            n=$((n + 1))
        done <"$TMP/types-$q"
        if [ "$TIED" = 1 ]; then
            ! grep -q '^output.weight ' "$TMP/types-$q" || fail "$q: tied model has output.weight"
        else
            grep -q '^output.weight ' "$TMP/types-$q" || fail "$q: untied model lacks output.weight"
        fi
    done

    # ours: the unquantized HF model, and our reader on every file
    "$BIN" logits --model "$M" --tokens "$text" --out "$TMP/hf.f32" >/dev/null
    for q in $QUANTS; do
        "$BIN" logits --model "$TMP/m-$q.gguf" --tokens "$text" --out "$TMP/ours-$q.f32" >/dev/null
    done
    if [ "$EXACT" = 1 ]; then
        cmp "$TMP/hf.f32" "$TMP/ours-f32.f32" || fail "f32 GGUF logits differ from the HF directory's"
    fi

    : >"$TMP/jobs3"
    for q in $greedy_types; do
        local cont
        cont=$(cat "$TMP/greedy-$q")
        [ "$(echo "$cont" | tr ',' '\n' | grep -c .)" = $N_GREEDY ] || fail "$q: llama.cpp gave $cont"
        # ours: the unquantized model for f32, our reader on the same f16 file for f16
        local src=$M
        [ $q = f16 ] && src=$TMP/m-f16.gguf
        "$BIN" logits --model "$src" --tokens "$prompt,$cont" --out "$TMP/g-$q.f32" >/dev/null
        echo "argmax $TMP/g-$q.f32 $V $(($(echo "$prompt" | tr ',' '\n' | wc -l) - 1)) > $TMP/ours-greedy-$q" >>"$TMP/jobs3"
    done
    for q in $QUANTS; do
        echo "compare $TMP/hf.f32 $TMP/lc-$q.f32 $V > $TMP/kl-lc-$q" >>"$TMP/jobs3"
        echo "compare $TMP/hf.f32 $TMP/ours-$q.f32 $V > $TMP/kl-ours-$q" >>"$TMP/jobs3"
    done
    llamacpp batch "$TMP/jobs3"
    for q in $greedy_types; do
        local cont ours
        cont=$(cat "$TMP/greedy-$q")
        ours=$(cut -d, -f1-$N_GREEDY "$TMP/ours-greedy-$q")
        [ "$ours" = "$cont" ] || fail "$q greedy: llama.cpp $cont, ours $ours"
        echo "greedy $q: llama.cpp and r1-distill agree on $N_GREEDY tokens ($cont)"
    done

    printf '%-7s %9s  %-28s %-28s\n' type bytes "llama.cpp vs HF (KL, top-1)" "r1-distill GGUF vs HF"
    for q in $QUANTS; do
        local kl_lc kl_ours t1_lc t1_ours
        kl_lc=$(field kl "$TMP/kl-lc-$q")
        t1_lc=$(field top1 "$TMP/kl-lc-$q")
        kl_ours=$(field kl "$TMP/kl-ours-$q")
        t1_ours=$(field top1 "$TMP/kl-ours-$q")
        printf '%-7s %9d  %-12s %-15s %-12s %s\n' $q "$(stat -c %s "$TMP/m-$q.gguf")" "$kl_lc" "$t1_lc" "$kl_ours" "$t1_ours"
        lt "$kl_lc" "$(kl_bound $q)" || fail "$q: llama.cpp KL $kl_lc above $(kl_bound $q)"
        lt "$kl_ours" "$(kl_bound $q)" || fail "$q: our reader's KL $kl_ours above $(kl_bound $q)"
        # where the weights' quantization dominates, both readers see the same error (at
        # smaller KL llama.cpp's own rounding of activations to 8 bits shows)
        if lt 2e-3 "$kl_ours"; then
            lt "$kl_lc" "$(awk -v k="$kl_ours" 'BEGIN { print 1.5 * k }')" &&
                lt "$kl_ours" "$(awk -v k="$kl_lc" 'BEGIN { print 1.5 * k }')" ||
                fail "$q: llama.cpp KL $kl_lc and ours $kl_ours disagree"
        fi
    done
}
