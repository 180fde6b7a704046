# Aether build.
#
#   make               build/aetherc and build/libaether_rt.a
#   make check         every unit and end-to-end test (Check); installs missing packages first
#   make asan          the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz          every tests/fuzz/fuzz_*.c harness under libFuzzer, FUZZ_SECONDS each (clang)
#   make demo          install what is missing, build, make a model, run it
#   make bench         1B-shaped synthetic models: prompt and generation speed (LLAMA_BENCH=... to compare)
#   make bench-gpu     the same on the Vulkan GPU, 1B and 7B shapes (examples/bench_gpu.sh)
#   make loadtest      a served model under 64 streaming clients for 10 minutes (LLAMA_SERVER=... to compare)
#   make bench-arm     make bench's table on an aarch64 board, BOARD=user@host (programs cross-built here)
#   make runtime-aarch64  the runtime cross-built for aarch64 (aetherc --target aarch64-linux-gnu uses it)
#   make size          what a program is made of, object by object (MODEL=, TARGET=, STATIC=1, BACKEND=all)
#   make install       PREFIX=/usr/local
#
# Sources are found by wildcard: a new .c under runtime/ joins the runtime library, a new .c under
# compiler/, ir/ or passes/ joins aetherc, a new tests/unit/check_*.c becomes a test. Every folder that
# holds headers is on the include path (docs/architecture.md maps the folders).

BUILD   ?= build
PREFIX  ?= /usr/local
CC      ?= cc
SHARED  ?= $(abspath $(CURDIR)/../shared)
FUZZ_SECONDS ?= 60

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wswitch-enum -Wno-switch-default
CFLAGS  ?= -O2 -g
SRC_DIRS := $(sort $(dir $(wildcard runtime/*.h runtime/*/*.h compiler/*/*.h ir/*.h passes/*.h passes/*/*.h)))
INCLUDES := $(patsubst %/,-I%,$(SRC_DIRS)) -I$(BUILD)/gen
VERSION := 0.1.0
ALL_CFLAGS := -std=c17 -D_GNU_SOURCE -ffp-contract=off $(WARN) $(CFLAGS) $(INCLUDES)
# BLAKE2b for the weights' hash: libsodium, linked statically into aetherc and into every program.
SODIUM_LIB := $(shell pkg-config --variable=libdir libsodium 2>/dev/null || echo /usr/lib)/libsodium.a
LDLIBS  := $(SODIUM_LIB) -ltcc -ldl -lm -lpthread
# libshaderc compiles the Vulkan kernels inside aetherc. Debian's shared libshaderc does not link, so
# aetherc takes the static one; generated programs never link it.
SHADERC_LIBS := -Wl,--start-group -lshaderc_combined -lglslang -lMachineIndependent -lOSDependent -lOGLCompiler \
    -lGenericCodeGen -lSPIRV -lSPIRV-Tools-opt -lSPIRV-Tools -lglslang-default-resource-limits -Wl,--end-group -lstdc++
YAML_LIBS := -lyaml
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm -lpthread)

ifeq ($(SAN),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS    += -fsanitize=address,undefined
endif

RT_SRC   := $(sort $(wildcard runtime/*.c runtime/*/*.c))
CC_SRC   := $(sort $(wildcard compiler/*/*.c ir/*.c passes/*.c passes/*/*.c))
TEST_SRC := $(sort $(wildcard tests/unit/check_*.c))

TEMPLATES := $(sort $(wildcard templates/*.c))
SHADERS   := $(sort $(wildcard shaders/*.glsl shaders/*.comp))

RT_OBJ   := $(RT_SRC:%.c=$(BUILD)/obj/%.o)
# The runtime's functions and data each in a section of their own, so that a program's link (gcc
# --gc-sections) keeps only what the program reaches; no unwind tables (C needs none; with -g the frames
# are described in the debug information instead).
$(RT_OBJ): ALL_CFLAGS += -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables
# The compute path (kernels, dequantization, the hash's loop, the sampler, which reads every logit of
# every token) is optimized for speed; the rest (command line, server, tokenizers, chat templates, GGUF
# reader, Vulkan host code), which runs once per start or per request, for size.
RT_FAST_SRC := $(wildcard runtime/kernels/*.c) runtime/format/dequant.c runtime/format/hash.c runtime/text/sampler.c
$(filter-out $(RT_FAST_SRC:%.c=$(BUILD)/obj/%.o),$(RT_OBJ)): ALL_CFLAGS += -Os
CC_OBJ   := $(CC_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/templates.o $(BUILD)/obj/gen/shaders.o
LIB_OBJ  := $(filter-out $(BUILD)/obj/compiler/driver/main.o,$(CC_OBJ))
# check_cross needs an x86-64 host: it cross-builds programs for aarch64 and runs them under qemu-user.
HOST_ARCH := $(shell uname -m)
ifneq ($(HOST_ARCH),x86_64)
TEST_SKIP += check_cross
endif
TESTS    := $(filter-out $(TEST_SKIP:%=$(BUILD)/tests/%),$(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%))
TEST_SUPPORT := $(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard tests/unit/test_*.c)))

.PHONY: all deps check test asan fuzz demo install clean bench bench-arm bench-gpu loadtest runtime-aarch64 size FORCE
# Keep the objects that tests are linked from (make would delete them as intermediates).
.SECONDARY:
all: $(BUILD)/aetherc $(BUILD)/libaether_rt.a

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

# The build's identity for --version (runtime/version.c) and where libsodium is (for the toolchains):
# rewritten only when one of them changes (the commit gets "-modified" for uncommitted changes), so that
# it rebuilds nothing otherwise.
$(BUILD)/gen/ae_build_info.h: FORCE
	@mkdir -p $(dir $@)
	@c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && { git diff --quiet HEAD || c=$$c-modified; } || c=unknown; \
	    printf '#define AE_VERSION "%s"\n#define AE_GIT_COMMIT "%s"\n#define AE_TARGET "%s"\n#define AE_SODIUM_LIB "%s"\n' \
	    "$(VERSION)" "$$c" "$$($(CC) -dumpmachine)" "$(SODIUM_LIB)" > $@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

$(BUILD)/obj/runtime/version.o $(BUILD)/obj/compiler/toolchain/cc_gcc.o: $(BUILD)/gen/ae_build_info.h

# The templates, embedded into aetherc as strings.
$(BUILD)/gen/templates.c: $(TEMPLATES) compiler/emit/embed_templates.sh
	@mkdir -p $(dir $@)
	sh compiler/emit/embed_templates.sh $(TEMPLATES) > $@

$(BUILD)/obj/gen/templates.o: $(BUILD)/gen/templates.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# The shaders, embedded into aetherc as a table of file texts.
$(BUILD)/gen/shaders.c: $(SHADERS) compiler/emit/embed_shaders.sh
	@mkdir -p $(dir $@)
	sh compiler/emit/embed_shaders.sh $(SHADERS) > $@

$(BUILD)/obj/gen/shaders.o: $(BUILD)/gen/shaders.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libaether_rt.a: $(RT_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/aetherc: $(CC_OBJ) $(BUILD)/libaether_rt.a
	$(CC) $(LDFLAGS) -o $@ $(CC_OBJ) $(BUILD)/libaether_rt.a $(YAML_LIBS) $(SHADERC_LIBS) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TEST_SUPPORT) $(LIB_OBJ) $(BUILD)/libaether_rt.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT) $(LIB_OBJ) $(BUILD)/libaether_rt.a $(YAML_LIBS) $(CHECK_LIBS) $(SHADERC_LIBS) $(LDLIBS)

# The runtime for aarch64, cross-built by Debian's aarch64-linux-gnu-gcc into $(BUILD)/aarch64-linux-gnu/,
# where aetherc --target aarch64-linux-gnu finds it (the headers are the same for every target).
runtime-aarch64:
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/aarch64-linux-gnu CC=aarch64-linux-gnu-gcc AR=aarch64-linux-gnu-ar SAN= CFLAGS="-O2 -g" \
	    CHECK_CFLAGS= $(BUILD)/aarch64-linux-gnu/libaether_rt.a

# check_cross compiles programs for aarch64 with the cross-built runtime and runs them under qemu-user.
ifeq ($(HOST_ARCH),x86_64)
$(BUILD)/tests/check_cross: | runtime-aarch64
endif

# Installs the Debian packages that are missing (a no-op when all are there).
deps:
	@sh .ci/install-deps

# check and asan install what is missing first, then build and test in a fresh make (so that flags
# taken from pkg-config see the installed packages).
check: deps
	@$(MAKE) --no-print-directory test

# Every suite but the end-to-end ones (check_e2e, check_cli, check_serve_e2e, check_cross): the programs
# aetherc writes link the runtime library, which gcc and libtcc cannot link once it is built with
# sanitizers. (check_program and check_serve run the same runtime in-process.)
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 CFLAGS="-O1 -g" TEST_SKIP="check_e2e check_cli check_serve_e2e check_cross" test

# The server's end-to-end test runs the official openai npm client, installed from the pinned
# tests/serve/package-lock.json (npm ci) into the build folder, with the test script beside it.
SERVE_NODE := $(BUILD)/serve-node
SERVE_NODE_FILES := tests/serve/package.json tests/serve/package-lock.json $(wildcard tests/serve/*.mjs)
$(SERVE_NODE)/installed: $(SERVE_NODE_FILES)
	@mkdir -p $(SERVE_NODE)
	cp $(SERVE_NODE_FILES) $(SERVE_NODE)/
	cd $(SERVE_NODE) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Each test runs from the repository root with AE_SHARED pointing at the shared models.
test: all $(TESTS) $(if $(filter %/check_serve_e2e,$(TESTS)),$(SERVE_NODE)/installed)
	@AE_SHARED=$(SHARED) AE_AETHERC=$(abspath $(BUILD)/aetherc) AE_RUNTIME_INCLUDE=$(abspath runtime/include) \
	    AE_SERVE_NODE=$(abspath $(SERVE_NODE)) sh tests/run_tests.sh $(TESTS)

# Every tests/fuzz/fuzz_<x>.c is a libFuzzer harness, built with clang and the sanitizers from its own
# sources (FUZZ_SRC_<x>: what it tests and what that uses, nothing else; runtime/kernels/cpu.c and the AVX
# kernels are left out) and run for FUZZ_SECONDS from its seeds (FUZZ_SEEDS_<x>) one after another.
FUZZ_NAMES := $(sort $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS  := $(FUZZ_NAMES:%=$(BUILD)/fuzz/%)
FUZZ_GGUF_SRC := runtime/format/gguf.c compiler/format/gguf_write.c runtime/error.c runtime/format/types.c
FUZZ_TOK_SRC  := $(FUZZ_GGUF_SRC) runtime/text/tokenizer.c $(sort $(wildcard runtime/text/tok_*.c))
FUZZ_SRC_fuzz_gguf           := $(FUZZ_GGUF_SRC)
FUZZ_SRC_fuzz_ir_parse       := ir/ir.c ir/ir_fused.c ir/ir_parse.c ir/ir_print.c ir/ir_verify.c \
                                runtime/error.c runtime/format/types.c
FUZZ_SRC_fuzz_tokenizer      := $(FUZZ_TOK_SRC)
FUZZ_SRC_fuzz_tokenizer_text := $(FUZZ_TOK_SRC)
FUZZ_SEEDS_fuzz_gguf           := tests/fuzz/seeds
FUZZ_SEEDS_fuzz_ir_parse       := tests/fuzz/seeds_ir
FUZZ_SEEDS_fuzz_tokenizer      := tests/fuzz/seeds_tokenizer
FUZZ_SEEDS_fuzz_tokenizer_text := tests/fuzz/seeds_tokenizer/text

.SECONDEXPANSION:
$(BUILD)/fuzz/%: tests/fuzz/%.c $$(FUZZ_SRC_%)
	@mkdir -p $(dir $@)
	clang -std=c17 -D_GNU_SOURCE -O1 -g $(INCLUDES) -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all -o $@ $< $(FUZZ_SRC_$*) -lm -lpthread

# One harness after another, each from a corpus folder that starts as a copy of its seeds.
define FUZZ_RUN
	@mkdir -p $(BUILD)/fuzz/corpus_$(1)
	cp -n $(FUZZ_SEEDS_$(1))/* $(BUILD)/fuzz/corpus_$(1)/ 2>/dev/null || true
	AE_SHARED=$(SHARED) $(BUILD)/fuzz/$(1) -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	    -print_final_stats=1 $(BUILD)/fuzz/corpus_$(1)

endef

fuzz: $(FUZZ_BINS)
	$(foreach f,$(FUZZ_NAMES),$(call FUZZ_RUN,$(f)))

demo: deps
	@$(MAKE) --no-print-directory all
	@sh examples/demo.sh $(BUILD)/aetherc $(SHARED)

bench: deps
	@$(MAKE) --no-print-directory all
	@sh examples/bench.sh $(BUILD)/aetherc $(SHARED)

bench-gpu: all
	@sh examples/bench_gpu.sh $(BUILD)/aetherc $(SHARED)/models/llama-2-tiny-random.gguf

# A served model under 64 streaming clients for 10 minutes on loopback (examples/loadtest.sh says what it
# reports and what it can be told; LLAMA_SERVER=... runs llama.cpp's server the same way).
loadtest: deps
	@$(MAKE) --no-print-directory all
	@sh examples/loadtest.sh $(BUILD)/aetherc $(SHARED)

# make bench's table on an aarch64 board: BOARD=user@host (reachable with ssh and scp); the programs are
# cross-built here and run there (examples/board_run.sh), as is LLAMA_BENCH=path/on/the/board.
bench-arm: deps
	@[ -n "$(BOARD)" ] || { echo "make bench-arm: set BOARD=user@host, an aarch64 machine reachable with ssh" >&2; exit 2; }
	@$(MAKE) --no-print-directory all runtime-aarch64
	@BOARD=$(BOARD) AETHERC_FLAGS="--target aarch64-linux-gnu" MEMBW_CC="aarch64-linux-gnu-gcc -static" \
	    RUN="sh $(CURDIR)/examples/board_run.sh" BENCH_DIR=$(BUILD)/bench-arm sh examples/bench.sh $(BUILD)/aetherc $(SHARED)

# What a program is made of: MODEL (default stories260K) compiled for TARGET (default the host; STATIC=1
# for --static; BACKEND=all for the Vulkan kernels too, default cpu), its size without weights, and the
# bytes each object of the link adds.
size: all $(if $(filter aarch64-linux-gnu,$(TARGET)),runtime-aarch64)
	@sh examples/size.sh $(BUILD)/aetherc $(or $(MODEL),$(SHARED)/models/stories260K.gguf) "$(TARGET)" "$(STATIC)" "$(BACKEND)"

# Installs aetherc, its runtime and headers, and the runtime of every other target built (build/<triple>/).
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/aether
	install -m 755 $(BUILD)/aetherc $(DESTDIR)$(PREFIX)/bin/aetherc
	install -m 644 $(BUILD)/libaether_rt.a $(DESTDIR)$(PREFIX)/lib/libaether_rt.a
	for lib in $(wildcard $(BUILD)/*-linux-gnu/libaether_rt.a); do \
	    d=$(DESTDIR)$(PREFIX)/lib/$$(basename $$(dirname $$lib)); install -d $$d && install -m 644 $$lib $$d/; done
	install -m 644 runtime/include/ae_*.h runtime/include/ggml_types.def $(DESTDIR)$(PREFIX)/include/aether/

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
