# SPDX-License-Identifier: MIT
# tests/fuzz: the libFuzzer harnesses (README.md, "Fuzzing").
#   make fuzz                 build them with clang into build-fuzz/ and run
#                             each for FUZZ_SECONDS (default 60)
#   make fuzz-build           only build them
#   FUZZ_TARGETS="ring_check top"   only these harnesses
#   FUZZ_ARGS="-jobs=4 -workers=2"  more libFuzzer options for every run
#   make fuzz-seeds           rewrite the seed corpora (tests/fuzz/gen_corpus.c)
# Crashes go to build-fuzz/crashes/<harness>/, the corpus each run grows to
# build-fuzz/corpus/<harness>/ (tests/fuzz/corpus/ and tests/fuzz/regress/
# are read, never written). The same harnesses, built with $(CC), replay
# those two directories in `make test` (tests/test_fuzz_replay.c).

FUZZ_HARNESSES := ring_consumer ring_producer ring_check registry node top
# bridge_wire: shmrpc-bridge's checks of what it receives from NATS
# (tools/bridge/wire.c). wire.c includes <nats/nats.h> but calls nothing of
# libnats, so the harness links no libnats; it is built, like the bridge,
# only where libnats is installed. NATS_LIBS comes from
# tools/bridge/bridge.mk, which the top Makefile includes before this file.
ifeq ($(origin NATS_LIBS),undefined)
$(error tests/fuzz/fuzz.mk: include tools/bridge/bridge.mk first (NATS_LIBS))
endif
ifneq ($(NATS_LIBS),)
FUZZ_HARNESSES += bridge_wire
FUZZ_REPLAY_DEFS := -DFUZZ_BRIDGE_WIRE
FUZZ_BRIDGE_OBJS := $(B)/tools/bridge/wire.o
else
FUZZ_REPLAY_DEFS :=
FUZZ_BRIDGE_OBJS :=
endif
FUZZ_TARGETS ?= $(FUZZ_HARNESSES)
FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=
FUZZ_B := build-fuzz
FUZZ_CC := clang
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $(FUZZ_SAN)
# clang 14 calls the cleanup variable of SHMRPC__KEEP_ERRNO unused (gcc,
# which builds everything else, does not): after the Makefile's -Wall.
ifeq ($(B),$(FUZZ_B))
override CFLAGS += -Wno-unused-variable
endif
FUZZ_INC := -Itests/fuzz -Itools/top

.PHONY: fuzz fuzz-build fuzz-harnesses
fuzz: fuzz-build
	$(Q)scripts/run-fuzz.sh $(FUZZ_B) $(FUZZ_SECONDS) "$(FUZZ_TARGETS)" "$(FUZZ_ARGS)"

fuzz-build:
	$(Q)scripts/deps.sh fuzz
	$(Q)$(MAKE) --no-print-directory B=$(FUZZ_B) CC=$(FUZZ_CC) CFLAGS="$(FUZZ_CFLAGS)" \
		fuzz-harnesses

# In the recursive make above: $(B) is build-fuzz, $(CFLAGS) instrumented.
fuzz-harnesses: $(FUZZ_HARNESSES:%=$(B)/fuzz/fuzz_%)

$(B)/tests/fuzz/fuzz_common.o: tests/fuzz/fuzz_common.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(FUZZ_INC) -c -o $@ $<

$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(B)/tests/fuzz/fuzz_common.o $(LIB_A)
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -fsanitize=fuzzer $(FUZZ_INC) -o $@ $< $(B)/tests/fuzz/fuzz_common.o \
		$(LIB_A) $(LIB_DEPS) $(LDLIBS)

$(B)/fuzz/fuzz_top: tests/fuzz/fuzz_top.c $(B)/tests/fuzz/fuzz_common.o $(TOP_CORE_OBJS) $(LIB_A)
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -fsanitize=fuzzer $(FUZZ_INC) -o $@ $< $(B)/tests/fuzz/fuzz_common.o \
		$(TOP_CORE_OBJS) $(LIB_A) $(LIB_DEPS) -lm $(LDLIBS)

# bridge_wire: bridge.h from tools/bridge/, wire.o built by bridge.mk's rule.
$(B)/fuzz/fuzz_bridge_wire $(B)/tests/fuzz/replay_bridge_wire.o: FUZZ_INC += -Itools/bridge

$(B)/fuzz/fuzz_bridge_wire: tests/fuzz/fuzz_bridge_wire.c $(B)/tests/fuzz/fuzz_common.o \
		$(FUZZ_BRIDGE_OBJS)
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -fsanitize=fuzzer $(FUZZ_INC) -o $@ $< $(B)/tests/fuzz/fuzz_common.o \
		$(FUZZ_BRIDGE_OBJS) $(LDLIBS)

# The seed corpora (tests/fuzz/corpus/), rewritten from gen_corpus.c.
.PHONY: fuzz-seeds
fuzz-seeds: $(B)/tests/fuzz/gen_corpus
	$(Q)$(B)/tests/fuzz/gen_corpus tests/fuzz/corpus

$(B)/tests/fuzz/gen_corpus: tests/fuzz/gen_corpus.c
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -o $@ $<

# The replay in make test: every harness in one program, each entry point
# renamed after its harness.
FUZZ_REPLAY_OBJS := $(FUZZ_HARNESSES:%=$(B)/tests/fuzz/replay_%.o)

$(B)/tests/fuzz/replay_%.o: tests/fuzz/fuzz_%.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(FUZZ_INC) -DLLVMFuzzerTestOneInput=fuzz_one_$* \
		-DLLVMFuzzerInitialize=fuzz_init_$* -c -o $@ $<

$(B)/tests/test_fuzz_replay: tests/test_fuzz_replay.c $(B)/tests/harness.o $(FUZZ_REPLAY_OBJS) \
		$(B)/tests/fuzz/fuzz_common.o $(TOP_CORE_OBJS) $(FUZZ_BRIDGE_OBJS) $(LIB_A)
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(FUZZ_INC) $(FUZZ_REPLAY_DEFS) -DFUZZ_DIR='"$(CURDIR)/tests/fuzz"' \
		-o $@ $< $(B)/tests/harness.o $(FUZZ_REPLAY_OBJS) $(B)/tests/fuzz/fuzz_common.o \
		$(TOP_CORE_OBJS) $(FUZZ_BRIDGE_OBJS) $(LIB_A) $(LIB_DEPS) $(TEST_LIBS) -lm $(LDLIBS)
