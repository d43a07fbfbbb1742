# r1-distill: one C11 binary, CUDA parts when nvcc is present.
#
#   make            build ./r1-distill (prints which optional parts it found)
#   make test       CPU test suite (unit, reference, end-to-end) plus the ASan/UBSan pass
#   make test-cuda  CUDA checks against the CPU reference (needs a GPU)
#   make bench      benchmarks beside their peers (reports, never fails)
#   make bench-cuda GPU benchmarks beside their peers: decode vs transformers, training vs PyTorch
#   make fuzz       libFuzzer targets for every parser (clang)
#   make demo       the whole pipeline on the embedded tiny teacher
#
# Knobs: NO_CUDA=1 skips CUDA; NO_OPENMP=1 builds single-threaded loops; SAN=1 builds into
# build-san/ with AddressSanitizer + UndefinedBehaviorSanitizer; DEBUG=1 builds -O0 -g.

VERSION := 0.1.0
CC      ?= cc
BUILD   := build
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter \
               -Wstrict-prototypes -Wmissing-prototypes -I. -MMD -MP
OPT     := -O2 -march=x86-64-v2 -g
ifeq ($(DEBUG),1)
OPT     := -O0 -g
endif
ifeq ($(SAN),1)
BUILD   := build-san
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN   := -fsanitize=address,undefined
endif

# ---- required Debian packages: OpenBLAS, cJSON, libarchive, PCRE2, utf8proc ----------------
PKGS := openblas libcjson libarchive libpcre2-8 libutf8proc
# PKG_CFLAGS / PKG_LIBS from the environment replace pkg-config (tests/cuda/gpu_deps.sh sets them
# on a GPU machine without the -dev packages).
ifndef PKG_LIBS
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
endif
ifeq ($(PKG_LIBS)$(filter deps clean,$(MAKECMDGOALS)),)
$(error missing build dependencies: run `make deps` (apt-get install $(DEB_PKGS)) or see README.md)
endif
# node + npm run the reference peers in tests (llama.cpp via node-llama-cpp, transformers.js);
# Debian's are installed only when none is on the PATH.
DEB_PKGS := build-essential pkg-config libopenblas-dev libcjson-dev libarchive-dev libpcre2-dev \
            libutf8proc-dev libarchive-tools zstd python3 clang \
            $(if $(shell command -v npm 2>/dev/null),,nodejs npm)

# ---- optional parts, probed -----------------------------------------------------------------
HAVE_OPENMP := $(shell [ "$(NO_OPENMP)" != 1 ] && echo 'int main(void){return 0;}' | \
                 $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo 1)
ifeq ($(HAVE_OPENMP),1)
OMP := -fopenmp
endif

NVCC ?= $(shell command -v nvcc 2>/dev/null || ([ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc))
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
ifneq ($(NO_CUDA),1)
ifneq ($(NVCC),)
HAVE_CUDA := 1
endif
endif

CFLAGS  := $(CFLAGS_BASE) $(OPT) $(OMP) $(PKG_CFLAGS) -DR1_VERSION='"$(VERSION)"'
LDLIBS  := $(PKG_LIBS) -lm -lpthread
LDFLAGS := $(OMP) $(LDSAN)

# ---- sources: every folder of DESIGN.md; distill/main.c is the entry ------------------------
DIRS     := core teacher datasets distill student convert eval
SRC      := $(filter-out distill/main.c,$(foreach d,$(DIRS),$(wildcard $(d)/*.c)))
OBJ      := $(SRC:%.c=$(BUILD)/%.o)
CU_SRC   := $(foreach d,$(DIRS),$(wildcard $(d)/cuda/*.cu))
ifeq ($(HAVE_CUDA),1)
CFLAGS   += -DR1_HAVE_CUDA -I$(CUDA_HOME)/include
CU_OBJ   := $(CU_SRC:%.cu=$(BUILD)/%.o)
NVFLAGS  := -std=c++17 -O3 -I. $(PKG_CFLAGS) -gencode=arch=compute_90a,code=sm_90a -lineinfo \
            -MMD -MP -Xcompiler -Wall,-Wno-unused-parameter -DR1_HAVE_CUDA
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublasLt -lcublas -lstdc++
HAVE_NCCL := $(shell [ -f $(CUDA_HOME)/include/nccl.h ] && echo 1)
ifeq ($(HAVE_NCCL),1)
CFLAGS   += -DR1_HAVE_NCCL
NVFLAGS  += -DR1_HAVE_NCCL
LDLIBS   += -lnccl
endif
endif
LIB      := $(BUILD)/libr1.a
BIN      := r1-distill
ifeq ($(SAN),1)
BIN      := $(BUILD)/r1-distill
endif

UNIT_SRC := $(wildcard tests/unit/test_*.c)
# unit tests of host code that lives in the CUDA library (the attention's plans): built only with
# it, so not by test-san, which builds without CUDA
UNIT_CUDA_SRC := tests/unit/test_attn_tiles.c
UNIT_PLAIN_SRC := $(filter-out $(UNIT_CUDA_SRC),$(UNIT_SRC))
ifneq ($(HAVE_CUDA),1)
UNIT_SRC := $(UNIT_PLAIN_SRC)
endif
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_PLAIN_BIN := $(UNIT_PLAIN_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# CUDA checks (run on a GPU machine): tests/cuda/test_*.cu, each compared with the CPU reference
CUDA_TEST_SRC := $(wildcard tests/cuda/test_*.cu)
CUDA_TEST_BIN := $(CUDA_TEST_SRC:tests/cuda/%.cu=$(BUILD)/tests-cuda/%)

.PHONY: all test test-unit test-san test-cuda bench bench-cuda fuzz demo demo-teacher deps clean info
all: info $(BIN)

info:
	@echo "r1-distill $(VERSION): cc=$(CC) openmp=$(if $(HAVE_OPENMP),yes,no) \
cuda=$(if $(HAVE_CUDA),yes ($(NVCC)),no$(if $(filter 1,$(NO_CUDA)), (NO_CUDA=1),)) \
nccl=$(if $(HAVE_NCCL),yes,no) \
build=$(BUILD)"

$(BIN): $(BUILD)/distill/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(LIB): $(OBJ) $(CU_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# AdamW's loop vectorizes at -O3 once sqrtf need not set errno (the same IEEE results); no fused
# multiply-adds, so that the GPU's AdamW (student/cuda/adamw.cu) gives the same bits
$(BUILD)/student/adamw.o: CFLAGS += -O3 -fno-math-errno -ffp-contract=off

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(BUILD)/tests/%: tests/unit/%.c tests/unit/testing.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# The suite: unit binaries and end-to-end scripts in the normal build, then the unit binaries
# and parser-facing end-to-end scripts again under ASan + UBSan.
test: all $(UNIT_BIN)
	@BUILD=$(BUILD) BIN=./$(BIN) tests/run.sh
	@$(MAKE) --no-print-directory test-san

test-unit: all $(UNIT_BIN)
	@BUILD=$(BUILD) BIN=./$(BIN) tests/run.sh unit

# compiled by nvcc, linked by $(CC) like the main binary (nvcc rejects -Wl, options)
.PRECIOUS: $(BUILD)/tests-cuda/%.o
$(BUILD)/tests-cuda/%.o: tests/cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) $(if $(OMP),-Xcompiler -fopenmp) -c $< -o $@

$(BUILD)/tests-cuda/%: $(BUILD)/tests-cuda/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

test-cuda: all $(CUDA_TEST_BIN)
	@[ -n "$(HAVE_CUDA)" ] || { echo "test-cuda needs nvcc (and a GPU to run)"; exit 2; }
	@BUILD=$(BUILD) BIN=./$(BIN) tests/run.sh cuda

# CUDA benchmarks (run on a GPU machine): drivers bench/<name>.c linked against the library,
# run by bench/cuda_generate.sh (decode) and bench/cuda/*.sh (training)
CUDA_BENCH_SRC := $(wildcard bench/cuda_*.c)
CUDA_BENCH_BIN := $(CUDA_BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -Wl,--as-needed -o $@ $< $(LIB) $(LDLIBS)

bench-cuda: all $(CUDA_BENCH_BIN) $(BUILD)/bench/decode
	@[ -n "$(HAVE_CUDA)" ] || { echo "bench-cuda needs nvcc (and a GPU to run)"; exit 2; }
	@BUILD=$(BUILD) bench/cuda_generate.sh
	@for s in bench/cuda/*.sh; do BUILD=$(BUILD) bash $$s; done

test-san:
	@$(MAKE) --no-print-directory SAN=1 NO_CUDA=1 build-san/r1-distill \
	  $(patsubst $(BUILD)/%,build-san/%,$(UNIT_PLAIN_BIN))
	@BUILD=build-san BIN=build-san/r1-distill SAN=1 tests/run.sh san

fuzz:
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk

bench: all
	@bench/run.sh

# Installs the Debian packages the build and tests need (uses sudo when not root).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The embedded demo (recipes/tiny.json): the whole pipeline on the committed tiny teacher, on the
# CPU; writes runs/demo/ (report.json, report.html). demo-teacher remakes the committed models.
demo: all
	./$(BIN) run recipes/tiny.json

demo-teacher: all
	BIN=./$(BIN) bash recipes/tiny/make_teacher.sh

deps:
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PKGS)

clean:
	rm -rf build build-san build-fuzz $(BIN)

-include $(OBJ:.o=.d) $(BUILD)/distill/main.d $(UNIT_BIN:=.d) $(CU_OBJ:.o=.d) \
         $(CUDA_TEST_BIN:=.d) $(BUILD)/bench/decode.d $(CUDA_BENCH_BIN:=.d)
