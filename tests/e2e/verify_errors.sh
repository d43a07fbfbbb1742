#!/usr/bin/env bash
# r1-distill verify on bad input: exit 2 with the file and line named, never a crash.
# san
set -euo pipefail
cd "$TMP"

# expect_fail WANT_TEXT... -- ARGS...: runs verify with ARGS, wants exit 2 and each WANT_TEXT
# in stderr.
expect_fail() {
    local wants=()
    while [ "$1" != "--" ]; do wants+=("$1"); shift; done
    shift
    local rc=0
    "$BIN" verify "$@" > out.txt 2> err.txt || rc=$?
    if [ "$rc" -ne 2 ]; then
        echo "verify $*: exit $rc, want 2"; cat err.txt; exit 1
    fi
    for w in "${wants[@]}"; do
        grep -qF -- "$w" err.txt || { echo "verify $*: stderr lacks '$w':"; cat err.txt; exit 1; }
    done
}

good='{"response": "\\boxed{1}", "gold": "1"}'

printf '%s\n%s\n%s\n' "$good" "$good" '{"answer": "\\boxed{1}", "gold": "1"}' > missing.jsonl
expect_fail 'r1-distill verify: missing.jsonl:3: the record has no "response" field' \
    'hint: its fields are: answer, gold; name the right one with --response-field' \
    -- --in missing.jsonl
# the two good records before the bad one were still reported
[ "$(wc -l < out.txt)" -eq 2 ]

printf '%s\n' "$good" '{"response": "\\boxed{1}"}' > nogold.jsonl
expect_fail 'nogold.jsonl:2: the record has no "gold" field' '--gold-field' -- --in nogold.jsonl
expect_fail 'nogold.jsonl:1: the record has no "truth" field' -- --in nogold.jsonl --gold-field truth

printf '%s\n' '{"response": 5, "gold": "1"}' > type.jsonl
expect_fail 'type.jsonl:1: "response" must be a string, not a number' -- --in type.jsonl
printf '%s\n' '{"response": "x", "gold": [1]}' > gtype.jsonl
expect_fail 'gtype.jsonl:1: "gold" must be a string or a number' -- --in gtype.jsonl
printf '%s\n' "$good" '[1, 2]' > array.jsonl
expect_fail 'array.jsonl:2: expected a JSON object, got an array' -- --in array.jsonl

printf '%s\n\n%s\n' "$good" '{"response": "x", "gold": ' > json.jsonl
expect_fail 'json.jsonl:3: invalid JSON at column' -- --in json.jsonl
printf '{"response": "\xff", "gold": "1"}\n' > utf8.jsonl
expect_fail 'utf8.jsonl:1: invalid UTF-8 at byte 15' -- --in utf8.jsonl
printf '%s\n' '{"response": "1", "gold": "1"} trailing' > trail.jsonl
expect_fail 'trail.jsonl:1: unexpected text after the JSON value' -- --in trail.jsonl

: > empty.jsonl
expect_fail 'empty.jsonl: no records: the file is empty' -- --in empty.jsonl
printf '\n  \n\n' > blank.jsonl
expect_fail 'blank.jsonl: no records: the file has only blank lines' -- --in blank.jsonl
expect_fail 'nosuch.jsonl: cannot open: No such file or directory' -- --in nosuch.jsonl
mkdir adir
expect_fail 'adir: is a directory' -- --in adir
expect_fail '--in' -- --gold-field g
expect_fail 'unknown option' -- --in empty.jsonl --bogus

# A file without read permission (root reads it anyway, so only as another user).
if [ "$(id -u)" -ne 0 ]; then
    printf '%s\n' "$good" > secret.jsonl
    chmod 000 secret.jsonl
    expect_fail 'secret.jsonl: cannot open: Permission denied' -- --in secret.jsonl
fi
echo "verify_errors: ok"
