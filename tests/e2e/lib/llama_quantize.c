/* llama-quantize as llama.cpp's library runs it: llama_model_quantize with the default
 * parameters (no importance matrix) on two threads.
 *
 *   llama_quantize IN.gguf OUT.gguf LLAMA_FTYPE     (7 Q8_0, 2 Q4_0, 15 Q4_K_M, 17 Q5_K_M, ...) */
#include <stdio.h>
#include <stdlib.h>

#include "llama.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: llama_quantize IN.gguf OUT.gguf LLAMA_FTYPE\n");
        return 2;
    }
    llama_backend_init();
    struct llama_model_quantize_params p = llama_model_quantize_default_params();
    p.ftype = (enum llama_ftype)atoi(argv[3]);
    p.nthread = 2;
    uint32_t rc = llama_model_quantize(argv[1], argv[2], &p);
    llama_backend_free();
    return rc != 0;
}
