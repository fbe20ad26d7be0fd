# SPDX-License-Identifier: MIT
# shmrpc-bridge (tools/bridge/), a fragment of the top Makefile. Built when
# libnats is installed (Debian: libnats-dev; scripts/deps.sh test and bench
# install it with nats-server); without it, `make` says so and goes on.
#   BRIDGE_BIN        the bridge
#   BRIDGE_BENCH_BIN  its benchmark (make bench-bridge)
NATS_LIBS := $(shell pkg-config --libs libnats 2>/dev/null)
BRIDGE_SRCS := $(filter-out tools/bridge/bench%.c,$(wildcard tools/bridge/*.c))
BRIDGE_OBJS := $(BRIDGE_SRCS:%.c=$(B)/%.o)
BRIDGE_BIN := $(B)/tools/shmrpc-bridge
BRIDGE_BENCH_BIN := $(B)/tools/shmrpc-bridge-bench
BRIDGE_BENCH_OBJS := $(patsubst %.c,$(B)/%.o,$(wildcard tools/bridge/bench*.c))

ifneq ($(NATS_LIBS),)
BRIDGE_TARGETS := $(BRIDGE_BIN) $(BRIDGE_BENCH_BIN)
BRIDGE_INSTALL := $(BRIDGE_BIN)
else
BRIDGE_TARGETS :=
BRIDGE_INSTALL :=
endif

.PHONY: bridge bench-bridge
bridge: $(if $(NATS_LIBS),$(BRIDGE_TARGETS),bridge-missing)

.PHONY: bridge-missing
bridge-missing:
	@echo "  SKIP    shmrpc-bridge: libnats not found (apt-get install libnats-dev)"

# Like every tool: the public header through the tools' include path
# (docs/architecture.md); the bridge uses nothing else of the library.
$(B)/tools/bridge/%.o: tools/bridge/%.c | $(TOOLS_HDRS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(TOOLS_CFLAGS) -c -o $@ $<

$(BRIDGE_BIN): $(BRIDGE_OBJS) $(LIB_A)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $(BRIDGE_OBJS) $(LIB_A) $(LIB_DEPS) $(NATS_LIBS) $(LDLIBS)

$(BRIDGE_BENCH_BIN): $(BRIDGE_BENCH_OBJS) $(LIB_A)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $(BRIDGE_BENCH_OBJS) $(LIB_A) $(LIB_DEPS) $(NATS_LIBS) -lm \
		$(LDLIBS)

# `make bench` ends with it: two bridges over a local nats-server, next to
# plain libnats between two processes (root: hosts are mount namespaces).
ifneq ($(NATS_LIBS),)
bench-bridge: $(BRIDGE_BENCH_BIN) $(BRIDGE_BIN)
	$(BRIDGE_BENCH_BIN) --bridge $(BRIDGE_BIN) $(BRIDGE_BENCH_ARGS)
else
bench-bridge:
	@echo "bench-bridge: skipped, libnats not found (scripts/deps.sh bench installs it)"
endif

# tests/test_bridge, test_bridge_call and test_bridge_bcast run the bridge (it links no libnats itself: without
# the bridge's binary it skips).
$(B)/tests/harness_bridge.o: tests/harness_bridge.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -Itools -DSHMRPC_BRIDGE_BIN='"$(BRIDGE_BIN)"' -c -o $@ $<

$(B)/tests/test_bridge $(B)/tests/test_bridge_call $(B)/tests/test_bridge_bcast: $(B)/tests/%: tests/%.c $(TH_OBJS) $(B)/tests/harness_bridge.o \
		$(LIB_A) $(BRIDGE_TARGETS) $(B)/tools/shmrpc-top
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -Itools -DSHMRPC_BRIDGE_BIN='"$(BRIDGE_BIN)"' \
		-DSHMRPC_TOP_BIN='"$(B)/tools/shmrpc-top"' -o $@ $< \
		$(TH_OBJS) $(B)/tests/harness_bridge.o $(LIB_A) $(LIB_DEPS) $(TEST_LIBS) \
		$(LDLIBS)

# tests/test_bridge_members plays another host's bridge itself: it speaks
# the wire (wire.o) through libnats. Without libnats it is built to skip.
$(B)/tests/test_bridge_members: tests/test_bridge_members.c $(TH_OBJS) \
		$(B)/tests/harness_bridge.o $(LIB_A) $(BRIDGE_TARGETS) \
		$(if $(NATS_LIBS),$(B)/tools/bridge/wire.o)
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -Itools $(if $(NATS_LIBS),-DSHMRPC_HAVE_NATS -Itools/bridge) -o $@ $< \
		$(TH_OBJS) $(B)/tests/harness_bridge.o $(if $(NATS_LIBS),$(B)/tools/bridge/wire.o) \
		$(LIB_A) $(LIB_DEPS) $(TEST_LIBS) $(NATS_LIBS) $(LDLIBS)
