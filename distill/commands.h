/* Every command's entry point, from the folder that owns it. */
#ifndef R1_DISTILL_COMMANDS_H
#define R1_DISTILL_COMMANDS_H

#include "teacher/teacher.h"
#include "distill/cmd_tokenize.h"

#endif
