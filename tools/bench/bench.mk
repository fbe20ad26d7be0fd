# SPDX-License-Identifier: MIT
# shmrpc-bench, a fragment of the top Makefile (`include tools/bench/bench.mk`),
# which sets, before the include, what the libshmrpc transports link:
#   BENCH_EXTRA_CFLAGS := -I<dir>    (shmrpc.h, and lib/inspect.h and
#                                    lib/layout.h for shmview.c)
#   BENCH_EXTRA_DEPS := $(LIB_A)
#   BENCH_EXTRA_LIBS := $(LIB_A) $(LIB_DEPS)
# The ZeroMQ and nng baselines are built when their Debian packages are
# installed (libzmq3-dev, libnng-dev: scripts/deps.sh bench); without them
# their runs are skipped, so that the rest builds with the build set alone.
# Targets:
#   bench-build  build $(BENCH_BIN) and check that calls between its files
#                go one way (tools/bench/calls.sh)
#   bench        install missing Debian packages (scripts/deps.sh bench),
#                build everything, run the standard set (< 5 minutes on
#                2 CPUs): table on stdout, $(B)/bench.json, SVGs in
#                $(B)/bench-plots/
#   bench-quick  the same, reduced: a smoke run (< 30 s); JSON and plots too
# ARGS='...' adds options (shmrpc-bench --help). Uses $(CC), $(CFLAGS), $(B),
# $(Q), $(msg) of the including Makefile; the forced flags are the project's.

B ?= build
CC ?= cc
CFLAGS ?= -O2 -g
BENCH_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes \
	-pthread -MMD -MP
BENCH_LDLIBS := -lrt -pthread
BENCH_EXTRA_CFLAGS ?=
BENCH_EXTRA_DEPS ?=
BENCH_EXTRA_LIBS ?=

ifeq ($(origin msg),undefined)
ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-7s %s\n' $(1) $(2)
endif
endif

BENCH_SRCS := $(wildcard tools/bench/*.c)
BENCH_OBJS := $(BENCH_SRCS:%.c=$(B)/%.o)
BENCH_BIN := $(B)/tools/shmrpc-bench

# Optional baselines: found here, recorded in $(BENCH_FEAT) (rewritten only
# when what was found changes, so that installing a package rebuilds them).
BENCH_ZMQ_LIBS := $(shell pkg-config --libs libzmq 2>/dev/null)
BENCH_NNG_LIBS := $(shell printf '\043include <nng/nng.h>\n' | \
	$(CC) -E -x c - >/dev/null 2>&1 && echo -lnng)
BENCH_FEATURES := $(if $(BENCH_ZMQ_LIBS),zmq) $(if $(BENCH_NNG_LIBS),nng)
BENCH_FEAT := $(B)/tools/bench/features
BENCH_CALLS_OK := $(B)/tools/bench/calls.ok

.PHONY: bench bench-build bench-quick bench-feat-force
bench-build: $(BENCH_BIN) $(BENCH_CALLS_OK)

$(BENCH_FEAT): bench-feat-force
	$(Q)mkdir -p $(@D)
	$(Q)echo '$(BENCH_FEATURES)' | cmp -s - $@ 2>/dev/null || echo '$(BENCH_FEATURES)' >$@

$(B)/tools/bench/tr_zmq.o: BENCH_OBJ_CFLAGS := $(if $(BENCH_ZMQ_LIBS),-DBENCH_HAVE_ZMQ=1)
$(B)/tools/bench/tr_nng.o: BENCH_OBJ_CFLAGS := $(if $(BENCH_NNG_LIBS),-DBENCH_HAVE_NNG=1)
$(B)/tools/bench/tr_zmq.o $(B)/tools/bench/tr_nng.o: $(BENCH_FEAT)

# Not the top Makefile's -Iinclude -Ilib: BENCH_EXTRA_CFLAGS says what the
# bench may include.
$(B)/tools/bench/%.o: tools/bench/%.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(filter-out -Iinclude -Ilib,$(CFLAGS)) $(BENCH_CFLAGS) $(BENCH_EXTRA_CFLAGS) \
		$(BENCH_OBJ_CFLAGS) -c -o $@ $<

$(BENCH_BIN): $(BENCH_OBJS) $(BENCH_EXTRA_DEPS) $(BENCH_FEAT)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(BENCH_CFLAGS) -o $@ $(BENCH_OBJS) $(BENCH_EXTRA_LIBS) \
		$(BENCH_ZMQ_LIBS) $(BENCH_NNG_LIBS) $(BENCH_LDLIBS)

# Calls between the bench's files go one way (ranks in calls.sh).
$(BENCH_CALLS_OK): $(BENCH_OBJS) tools/bench/calls.sh
	$(call msg,CHECK,calls)
	$(Q)tools/bench/calls.sh $(BENCH_OBJS)
	$(Q)touch $@

bench:
	$(Q)scripts/deps.sh bench
	$(Q)$(MAKE) --no-print-directory all
	$(Q)rm -rf $(B)/bench-plots
	$(BENCH_BIN) --json $(B)/bench.json --plots $(B)/bench-plots $(ARGS)
	$(Q)$(MAKE) --no-print-directory bench-python PYBENCH_ARGS="--json $(B)/bench-python.json"
	$(Q)$(MAKE) --no-print-directory bench-bridge

bench-quick:
	$(Q)scripts/deps.sh bench
	$(Q)$(MAKE) --no-print-directory all
	$(Q)rm -rf $(B)/bench-plots-quick
	$(BENCH_BIN) --quick --json $(B)/bench-quick.json --plots $(B)/bench-plots-quick $(ARGS)
	$(Q)$(MAKE) --no-print-directory bench-python PYBENCH_ARGS=--quick
	$(Q)$(MAKE) --no-print-directory bench-bridge BRIDGE_BENCH_ARGS=--quick

-include $(BENCH_OBJS:.o=.d)
