#!/usr/bin/env bash
# A plain-text corpus from what a Debian machine already holds, for training the small reference
# LM of bench/train_reference_lm.py when no data set is at hand: Python's standard library
# (code and docstrings), package documentation (READMEs, changelogs) and manual pages with
# their markup stripped. The GNU GPL v3 text is left out: bench/gguf_quality.sh evaluates on it.
#
#   bench/make_corpus.sh OUT.txt [MAX_MB]      (default 40 MB)
set -euo pipefail
out=$1
max=$(( ${2:-40} * 1000000 ))
py=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
: >"$out"
add() { [ "$(stat -c %s "$out")" -lt $max ] && cat >>"$out" || true; }
# package documentation first (English prose), then manual pages, then code
find /usr/share/doc -type f \( -name 'README*' -o -name 'changelog*' -o -name 'NEWS*' -o -name '*.txt' -o -name '*.md' \) |
    sort | while read -r f; do
        case $f in *.gz) zcat -f "$f" 2>/dev/null ;; *) cat "$f" 2>/dev/null ;; esac | add
        echo >>"$out"
    done
find /usr/share/man/man1 /usr/share/man/man3 /usr/share/man/man5 /usr/share/man/man7 -type f 2>/dev/null | sort |
    while read -r f; do
        zcat -f "$f" 2>/dev/null | sed -e '/^\.\\"/d' -e 's/^\.[A-Za-z]* *//' -e 's/\\f[BIRP]//g' \
            -e 's/\\-/-/g' -e 's/\\(em/--/g' -e 's/\\&//g' | add
    done
find "$py" -name '*.py' -not -path '*/test/*' -not -path '*/tests/*' -not -path '*/site-packages/*' |
    sort | while read -r f; do add <"$f"; done
head -c $max "$out" >"$out.tmp" && mv "$out.tmp" "$out"
echo "corpus: $(stat -c %s "$out") bytes in $out" >&2
