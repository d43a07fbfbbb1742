/* The Ollama Modelfile (ollama docs/modelfile.md): FROM the GGUF file, a TEMPLATE in Ollama's Go
 * template syntax rendering the R1 conversation format, the R1 stop tokens and the R1 sampling
 * settings (DeepSeek-R1 README: temperature 0.6, top-p 0.95, start the reply with "<think>\n").
 *
 * The template mirrors the R1-Distill chat template (models-and-formats.md §1.7) and Ollama's
 * template/deepseek.gotmpl: system prompt first, "<｜User｜>" and "<｜Assistant｜>" turns, an
 * earlier assistant turn closed by "<｜end▁of▁sentence｜>" (its reasoning is not rendered:
 * Ollama keeps it apart from .Content), and the generation prompt "<｜Assistant｜><think>\n".
 * BOS is not in the template: llama.cpp adds it (tokenizer.ggml.add_bos_token). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert.h"
#include "core/error.h"
#include "core/fileio.h"

static const char TEMPLATE[] =
    "TEMPLATE \"\"\"{{- if .System }}{{ .System }}{{ end }}\n"
    "{{- range $i, $_ := .Messages }}\n"
    "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
    "{{- if eq .Role \"user\" }}<｜User｜>{{ .Content }}\n"
    "{{- else if eq .Role \"assistant\" }}<｜Assistant｜>{{ .Content }}"
    "{{ if not $last }}<｜end▁of▁sentence｜>{{ end }}\n"
    "{{- end }}\n"
    "{{- if and $last (ne .Role \"assistant\") }}<｜Assistant｜><think>\n"
    "{{ end }}\n"
    "{{- end }}\"\"\"\n";

static const char *const STOPS[] = {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>",
                                    "<｜User｜>", "<｜Assistant｜>"};

char *modelfile_text(const char *from) {
    size_t cap = strlen(from) + sizeof TEMPLATE + 1024;
    char *s = xmalloc(cap);
    int n = snprintf(s, cap,
                     "# Ollama Modelfile for an R1-style reasoning model (written by r1-distill "
                     "export).\n#   ollama create NAME -f Modelfile && ollama run NAME\n"
                     "FROM %s\n\n%s\n", from, TEMPLATE);
    for (size_t i = 0; i < sizeof STOPS / sizeof *STOPS; i++)
        n += snprintf(s + n, cap - (size_t)n, "PARAMETER stop \"%s\"\n", STOPS[i]);
    n += snprintf(s + n, cap - (size_t)n, "PARAMETER temperature 0.6\nPARAMETER top_p 0.95\n");
    CHECK((size_t)n < cap);
    return s;
}

/* FROM names the GGUF relative to the Modelfile's folder when they share it ("./x.gguf", as
 * ollama create resolves it), and by its path as given otherwise. */
static char *from_path(const char *modelfile, const char *gguf) {
    const char *ms = strrchr(modelfile, '/'), *gs = strrchr(gguf, '/');
    size_t mdir = ms ? (size_t)(ms - modelfile) : 0, gdir = gs ? (size_t)(gs - gguf) : 0;
    if (mdir == gdir && strncmp(modelfile, gguf, mdir) == 0)
        return xasprintf("./%s", gs ? gs + 1 : gguf);
    return xstrdup(gguf);
}

int modelfile_write(const char *path, const char *gguf_path) {
    char *from = from_path(path, gguf_path);
    if (strchr(from, '\n') || strchr(from, '"')) {
        free(from);
        return err_fail(R1_EINPUT, gguf_path,
                        "a Modelfile cannot name a path with a newline or a quote");
    }
    char *text = modelfile_text(from);
    int rc = file_write_atomic(path, text, strlen(text));
    free(text);
    free(from);
    return rc;
}
