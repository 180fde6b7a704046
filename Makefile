# Aether build.
#
#   make               build/aetherc and build/libaether_rt.a
#   make check         every unit and end-to-end test (Check); installs missing packages first
#   make asan          the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz          the GGUF reader under libFuzzer for FUZZ_SECONDS (clang)
#   make demo          install what is missing, build, make a model, run it
#   make bench         1B-shaped synthetic models: prompt and generation speed (LLAMA_BENCH=... to compare)
#   make install       PREFIX=/usr/local
#
# Sources are found by wildcard: a new runtime/*.c joins the runtime library, a new
# compiler/ ir/ passes/ *.c joins aetherc, a new tests/unit/check_*.c becomes a test.

BUILD   ?= build
PREFIX  ?= /usr/local
CC      ?= cc
SHARED  ?= $(abspath $(CURDIR)/../shared)
FUZZ_SECONDS ?= 60

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wswitch-enum -Wno-switch-default
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c17 -D_GNU_SOURCE -ffp-contract=off $(WARN) $(CFLAGS) -Iruntime -Iir -Ipasses -Icompiler
LDLIBS  := -ltcc -ldl -lm -lpthread
YAML_LIBS := -lyaml
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm -lpthread)

ifeq ($(SAN),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS    += -fsanitize=address,undefined
endif

RT_SRC   := $(sort $(wildcard runtime/*.c))
CC_SRC   := $(sort $(wildcard compiler/*.c ir/*.c passes/*.c))
TEST_SRC := $(sort $(wildcard tests/unit/check_*.c))

TEMPLATES := $(sort $(wildcard templates/*.c))

RT_OBJ   := $(RT_SRC:%.c=$(BUILD)/obj/%.o)
CC_OBJ   := $(CC_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/templates.o
LIB_OBJ  := $(filter-out $(BUILD)/obj/compiler/main.o,$(CC_OBJ))
TESTS    := $(filter-out $(TEST_SKIP:%=$(BUILD)/tests/%),$(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%))
TEST_SUPPORT := $(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard tests/unit/test_*.c)))

.PHONY: all deps check test asan fuzz demo install clean bench
# Keep the objects that tests are linked from (make would delete them as intermediates).
.SECONDARY:
all: $(BUILD)/aetherc $(BUILD)/libaether_rt.a

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

# The templates, embedded into aetherc as strings.
$(BUILD)/gen/templates.c: $(TEMPLATES) compiler/embed_templates.sh
	@mkdir -p $(dir $@)
	sh compiler/embed_templates.sh $(TEMPLATES) > $@

$(BUILD)/obj/gen/templates.o: $(BUILD)/gen/templates.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libaether_rt.a: $(RT_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/aetherc: $(CC_OBJ) $(BUILD)/libaether_rt.a
	$(CC) $(LDFLAGS) -o $@ $(CC_OBJ) $(BUILD)/libaether_rt.a $(YAML_LIBS) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TEST_SUPPORT) $(LIB_OBJ) $(BUILD)/libaether_rt.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT) $(LIB_OBJ) $(BUILD)/libaether_rt.a $(YAML_LIBS) $(CHECK_LIBS) $(LDLIBS)

# Installs the Debian packages that are missing (a no-op when all are there).
deps:
	@sh .ci/install-deps

# check and asan install what is missing first, then build and test in a fresh make (so that flags
# taken from pkg-config see the installed packages).
check: deps
	@$(MAKE) --no-print-directory test

# Every suite but check_e2e: the programs aetherc writes link the runtime library, which gcc and libtcc
# cannot link once it is built with sanitizers. (check_program runs the same runtime in-process.)
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 CFLAGS="-O1 -g" TEST_SKIP=check_e2e test

# Each test runs from the repository root with AE_SHARED pointing at the shared models.
test: all $(TESTS)
	@AE_SHARED=$(SHARED) AE_AETHERC=$(abspath $(BUILD)/aetherc) AE_RUNTIME_INCLUDE=$(abspath runtime) \
	    sh tests/run_tests.sh $(TESTS)

# The fuzzer sees the GGUF reader and writer and what they use, nothing else.
FUZZ_BIN := $(BUILD)/fuzz/fuzz_gguf
FUZZ_SRC := runtime/gguf.c runtime/gguf_write.c runtime/error.c runtime/types.c
$(FUZZ_BIN): tests/fuzz/fuzz_gguf.c $(FUZZ_SRC)
	@mkdir -p $(dir $@)
	clang -std=c17 -D_GNU_SOURCE -O1 -g -Iruntime -fsanitize=fuzzer,address,undefined \
	    -o $@ tests/fuzz/fuzz_gguf.c $(FUZZ_SRC) -lm -lpthread

fuzz: $(FUZZ_BIN)
	@mkdir -p $(BUILD)/fuzz/corpus
	cp -n tests/fuzz/seeds/* $(BUILD)/fuzz/corpus/ 2>/dev/null || true
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	    -print_final_stats=1 $(BUILD)/fuzz/corpus

demo: deps
	@$(MAKE) --no-print-directory all
	@sh examples/demo.sh $(BUILD)/aetherc $(SHARED)

bench: deps
	@$(MAKE) --no-print-directory all
	@sh examples/bench.sh $(BUILD)/aetherc $(SHARED)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/aether
	install -m 755 $(BUILD)/aetherc $(DESTDIR)$(PREFIX)/bin/aetherc
	install -m 644 $(BUILD)/libaether_rt.a $(DESTDIR)$(PREFIX)/lib/libaether_rt.a
	install -m 644 runtime/ae_*.h runtime/ggml_types.def $(DESTDIR)$(PREFIX)/include/aether/

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
