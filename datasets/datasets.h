/* datasets/: prompt sources, built-in tasks, trace archives, token shards and packing. */
#ifndef R1_DATASETS_DATASETS_H
#define R1_DATASETS_DATASETS_H

int cmd_tasks(int argc, char **argv);

#endif
