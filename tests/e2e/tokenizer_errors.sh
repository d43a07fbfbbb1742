#!/usr/bin/env bash
# san
# Bad input gives a clear message and exit status 2: malformed or unsupported tokenizer.json
# (the message lists what is supported), invalid UTF-8 on stdin, ids outside the vocabulary,
# malformed ids, conversations and options.
set -euo pipefail
cd "$TMP"

# A minimal valid tokenizer: bytes a, b, space (Ġ) and the merge a+b.
good() {
    cat <<'JSON'
{"version": "1.0", "truncation": null, "padding": null,
 "added_tokens": [{"id": 4, "content": "<eos>", "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true}],
 "normalizer": null,
 "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
 "post_processor": null,
 "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
 "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
           "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
           "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": ["a b"]}}
JSON
}
mkdir ok && good >ok/tokenizer.json
[ "$(printf 'ab ab<eos>' | "$BIN" tokenize --tokenizer ok)" = "2 3 2 4" ]

# expect_fail NAME STATUS PATTERN COMMAND...: the command fails with STATUS and stderr matching.
expect_fail() {
    local name=$1 want=$2 pattern=$3 rc=0
    shift 3
    "$@" >out.txt 2>err.txt || rc=$?
    if [ "$rc" != "$want" ]; then echo "$name: exit $rc, want $want"; cat err.txt; exit 1; fi
    if ! grep -q -- "$pattern" err.txt; then echo "$name: stderr lacks '$pattern':"; cat err.txt; exit 1; fi
    if grep -q "AddressSanitizer\|runtime error" err.txt; then echo "$name: sanitizer report"; cat err.txt; exit 1; fi
}
# variant NAME SED-EXPRESSION: a copy of the good tokenizer with one edit.
variant() { mkdir -p "$1" && good | sed -e "$2" >"$1/tokenizer.json"; }

expect_fail missing 2 "cannot open" "$BIN" tokenize --tokenizer nowhere </dev/null
variant truncated 's/"merges": \["a b"\]}}/"merges": ["a b"]/'
expect_fail truncated 2 "invalid JSON at line" "$BIN" tokenize --tokenizer truncated </dev/null
variant badescape 's/"Ġ": 3/"\\q": 3/'
expect_fail badescape 2 "invalid JSON at line 10, column 48: unknown escape" "$BIN" tokenize --tokenizer badescape </dev/null
variant wordpiece 's/"type": "BPE"/"type": "WordPiece"/'
expect_fail wordpiece 2 "unsupported model WordPiece" "$BIN" tokenize --tokenizer wordpiece </dev/null
grep -q "supported: model BPE; normalizer none, NFC" err.txt
variant lowercase 's/"normalizer": null/"normalizer": {"type": "Lowercase"}/'
expect_fail lowercase 2 "unsupported normalizer Lowercase" "$BIN" tokenize --tokenizer lowercase </dev/null
grep -q "pre_tokenizer ByteLevel, Split" err.txt
variant whitespace 's/"pre_tokenizer": {"type": "ByteLevel"/"pre_tokenizer": {"type": "Whitespace"/'
expect_fail whitespace 2 "unsupported pre_tokenizer Whitespace" "$BIN" tokenize --tokenizer whitespace </dev/null
variant removed 's/"pre_tokenizer": {[^}]*}/"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Removed", "invert": false}/'
expect_fail removed 2 "unsupported pre_tokenizer Split behavior Removed" "$BIN" tokenize --tokenizer removed </dev/null
variant badregex 's/"pre_tokenizer": {[^}]*}/"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated", "invert": false}/'
expect_fail badregex 2 "pattern does not compile" "$BIN" tokenize --tokenizer badregex </dev/null
variant nodecoder 's/"decoder": {[^}]*}/"decoder": null/'
expect_fail nodecoder 2 "unsupported decoder (none)" "$BIN" tokenize --tokenizer nodecoder </dev/null
variant bert 's/"post_processor": null/"post_processor": {"type": "BertProcessing", "sep": ["x", 1], "cls": ["y", 0]}/'
expect_fail bert 2 "unsupported post_processor BertProcessing" "$BIN" tokenize --tokenizer bert </dev/null
variant badmerge 's/"merges": \["a b"\]/"merges": ["a c"]/'
expect_fail badmerge 2 'model.merges\[0\]: token "c" is not in the vocab' "$BIN" tokenize --tokenizer badmerge </dev/null
variant badmergeform 's/"merges": \["a b"\]/"merges": ["a b c"]/'
expect_fail badmergeform 2 "is not two tokens" "$BIN" tokenize --tokenizer badmergeform </dev/null
variant dupid 's/"ab": 2/"ab": 1/'
expect_fail dupid 2 "id 1 is given to" "$BIN" tokenize --tokenizer dupid </dev/null
variant negid 's/"ab": 2/"ab": -2/'
expect_fail negid 2 "id must be an integer" "$BIN" tokenize --tokenizer negid </dev/null
variant addedid 's/"id": 4/"id": 9/'
expect_fail addedid 2 "the HF tokenizer would give it 4" "$BIN" tokenize --tokenizer addedid </dev/null
variant truncation 's/"truncation": null/"truncation": {"max_length": 8}/'
expect_fail truncation 2 '"truncation" is set' "$BIN" tokenize --tokenizer truncation </dev/null
variant dropout 's/"dropout": null/"dropout": 0.1/'
expect_fail dropout 2 "unsupported model option dropout" "$BIN" tokenize --tokenizer dropout </dev/null
variant version 's/"version": "1.0"/"version": "2.0"/'
expect_fail version 2 'unknown tokenizer.json version "2.0"' "$BIN" tokenize --tokenizer version </dev/null
variant wrongtype 's/"fuse_unk": false/"fuse_unk": "no"/'
expect_fail wrongtype 2 '"model.fuse_unk" must be a boolean, not a string' "$BIN" tokenize --tokenizer wrongtype </dev/null
mkdir badconfig && good >badconfig/tokenizer.json && echo '{"bos_token": 5' >badconfig/tokenizer_config.json
expect_fail badconfig 2 "tokenizer_config.json: invalid JSON" "$BIN" tokenize --tokenizer badconfig </dev/null

# Input errors.
printf 'ab\xff\xfeab' >bad.txt
expect_fail utf8 2 "invalid UTF-8 at byte 2" "$BIN" tokenize --tokenizer ok <bad.txt
printf 'a\xe6\x97' >cut.txt
expect_fail utf8_cut 2 "invalid UTF-8 at byte 1" "$BIN" tokenize --tokenizer ok <cut.txt
echo "0 1 5" >ids.txt
expect_fail range 2 "id 5 (position 2) is not in the vocabulary (ids 0..4)" "$BIN" tokenize --tokenizer ok --decode <ids.txt
echo "0 x1" >ids.txt
expect_fail notid 2 '"x1" is not a token id' "$BIN" tokenize --tokenizer ok --decode <ids.txt
echo "0 -1" >ids.txt
expect_fail negative 2 '"-1" is not a token id' "$BIN" tokenize --tokenizer ok --decode <ids.txt
echo "99999999999" >ids.txt
expect_fail huge 2 "is not a token id" "$BIN" tokenize --tokenizer ok --decode <ids.txt
printf '1 2\n0 7\n' >ids.txt
expect_fail jsonl_range 2 "line 2: decode: id 7" "$BIN" tokenize --tokenizer ok --decode --jsonl <ids.txt
printf '"ab"\n42\n' >lines.txt
expect_fail jsonl_string 2 "stdin line 2: expected a JSON string" "$BIN" tokenize --tokenizer ok --jsonl <lines.txt
printf '"ab"\n"a\\ud800"\n' >lines.txt
expect_fail jsonl_surrogate 2 "stdin line 2: invalid JSON at line 1, column 3: lone high surrogate" "$BIN" tokenize --tokenizer ok --jsonl <lines.txt

# Conversations and options.
echo '[{"role": "user", "content": "ab"' >conv.json
expect_fail chat_json 2 "stdin: invalid JSON" "$BIN" tokenize --tokenizer ok --chat --format chatml --render <conv.json
echo '[{"role": "tool", "content": "ab"}]' >conv.json
expect_fail chat_role 2 'role "tool" is not supported (system, user, assistant)' "$BIN" tokenize --tokenizer ok --chat --format chatml --render <conv.json
echo '[{"role": "user"}]' >conv.json
expect_fail chat_content 2 'needs "role" and "content"' "$BIN" tokenize --tokenizer ok --chat --format chatml --render <conv.json
echo '{"role": "user", "content": "x"}' >conv.json
expect_fail chat_array 2 "expected a JSON array of messages" "$BIN" tokenize --tokenizer ok --chat --format chatml --render <conv.json
echo '[{"role": "user", "content": "x"}]' >conv.json
expect_fail chat_detect 2 "no chat_template" "$BIN" tokenize --tokenizer ok --chat <conv.json
grep -q "force a format with --format" err.txt
echo '{}' >tpl.jinja
expect_fail chat_unknown_tpl 2 "none of the known formats" "$BIN" tokenize --tokenizer ok --chat --chat-template tpl.jinja <conv.json
expect_fail chat_tokens 2 "needs the token <|im_start|>" "$BIN" tokenize --tokenizer ok --chat --format chatml <conv.json
expect_fail format 2 '"mistral" is not one of auto, r1, chatml, llama3' "$BIN" tokenize --tokenizer ok --chat --format mistral <conv.json
expect_fail render_alone 2 "apply to --chat only" "$BIN" tokenize --tokenizer ok --render </dev/null
expect_fail skip_alone 2 "applies to --decode only" "$BIN" tokenize --tokenizer ok --skip-special </dev/null
expect_fail no_tokenizer 2 "tokenizer" "$BIN" tokenize </dev/null
echo "errors: all refused with status 2"
