/* The pipeline runner behind `r1-distill run RECIPE`.
 *
 * A recipe's "pipeline" is a list of stages, each one command of this program:
 *
 *   "run_dir": "runs/demo",
 *   "pipeline": [
 *     {"name": "traces", "command": "generate",
 *      "args": {"teacher": "${recipe_dir}/tiny-teacher", "out": "${run_dir}/traces", ...},
 *      "resume": "--resume-flag-if-any"},
 *     ...
 *   ]
 *
 * Each stage runs as a child process of this binary with its args as --key value options (true
 * becomes a bare --key flag; false and null are left out), then the strings of its optional
 * "positional" array. When a stage exits 0, the runner
 * records <run_dir>/stages/<name>.done holding a hash of the stage's command line; a re-run skips
 * every stage whose record matches, so completed stages are never redone, and runs the first
 * stage without one. A stage interrupted mid-way is simply run again: every command resumes its
 * own partial output (generate keeps completed shards, train continues from its last
 * checkpoint: a stage may name a "resume_flag" added when its "resume_if" glob pattern matches
 * a path, e.g. "resume_flag": "resume", "resume_if": "${run_dir}/student/checkpoint-*"). Changing a stage's arguments invalidates
 * its record and those of every later stage.
 *
 * Strings may use ${run_dir}, ${recipe_dir} (the recipe file's folder) and ${root} (the current
 * directory). Stages see R1_RUN_STARTED, the run's start as seconds since the epoch. */
#ifndef R1_DISTILL_PIPELINE_H
#define R1_DISTILL_PIPELINE_H

int cmd_run(int argc, char **argv);
/* r1-distill report: the summary of a run (distill/report.c). */
int cmd_report(int argc, char **argv);

#endif
