/* Every command's entry point, from the folder that owns it. */
#ifndef R1_DISTILL_COMMANDS_H
#define R1_DISTILL_COMMANDS_H

#include "convert/convert.h"
#include "datasets/datasets.h"
#include "datasets/traces.h"
#include "distill/pipeline.h"
#include "student/init.h"
#include "student/plan.h"
#include "datasets/sft.h"
#include "student/student.h"
#include "teacher/generate.h"
#include "teacher/teacher.h"
#include "teacher/tensor_parallel.h"
#include "eval/eval.h"
#include "distill/curate.h"
#include "distill/cmd_tokenize.h"

#endif
