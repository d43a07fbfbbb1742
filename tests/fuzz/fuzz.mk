# libFuzzer targets, one per parser: tests/fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput.
#   make fuzz                       builds build-fuzz/fuzz_<name> for every target
#   build-fuzz/fuzz_safetensors -max_total_time=60 tests/fuzz/corpus/safetensors
# Built with clang, -fsanitize=fuzzer,address,undefined, against every library source except
# the CUDA parts and the CLI entry.
CC       := clang
BUILD    := build-fuzz
PKGS     := openblas libcjson libarchive libpcre2-8 libutf8proc
CFLAGS   := -std=c11 -D_GNU_SOURCE -O1 -g -I. -fsanitize=fuzzer-no-link,address,undefined \
            $(shell pkg-config --cflags $(PKGS)) -DR1_VERSION='"fuzz"'
LDLIBS   := $(shell pkg-config --libs $(PKGS)) -lm -lpthread
DIRS     := core teacher datasets distill student convert eval
SRC      := $(filter-out distill/main.c,$(foreach d,$(DIRS),$(wildcard $(d)/*.c)))
OBJ      := $(SRC:%.c=$(BUILD)/%.o)
TARGETS  := $(patsubst tests/fuzz/%.c,$(BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))

# keep the objects between runs
.SECONDARY:

all: $(TARGETS)
	@echo "fuzz targets: $(TARGETS)"

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(OBJ)
	$(CC) $(CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)
