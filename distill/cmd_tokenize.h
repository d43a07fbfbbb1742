/* r1-distill tokenize (distill/cmd_tokenize.c). */
#ifndef R1_DISTILL_CMD_TOKENIZE_H
#define R1_DISTILL_CMD_TOKENIZE_H

int cmd_tokenize(int argc, char **argv);

#endif
