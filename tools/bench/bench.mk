# SPDX-License-Identifier: MIT
# shmrpc-bench, as a fragment for the top Makefile: `include tools/bench/bench.mk`.
# Standalone:  make -f tools/bench/bench.mk [B=build] [V=1]
#              make -f tools/bench/bench.mk bench-run ARGS='--quick'
# Defines: $(BENCH_BIN), targets bench (build), bench-run, bench-quick.
# Uses $(CC), $(CFLAGS), $(B), $(Q), $(msg) when the including Makefile
# has them; the forced flags are the project's.
# To link a libshmrpc transport (tools/bench/tr_shmrpc.c, listed in
# transports.c), set before the include, e.g.:
#   BENCH_EXTRA_CFLAGS := -Iinclude
#   BENCH_EXTRA_DEPS := $(LIB_A)
#   BENCH_EXTRA_LIBS := $(LIB_A) $(LIB_DEPS)

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

.PHONY: bench bench-run bench-quick
bench: $(BENCH_BIN)

$(B)/tools/bench/%.o: tools/bench/%.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(BENCH_CFLAGS) $(BENCH_EXTRA_CFLAGS) -c -o $@ $<

$(BENCH_BIN): $(BENCH_OBJS) $(BENCH_EXTRA_DEPS)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(BENCH_CFLAGS) -o $@ $(BENCH_OBJS) $(BENCH_EXTRA_LIBS) $(BENCH_LDLIBS)

# The full standard run takes about 80 s on 2 CPUs.
bench-run: $(BENCH_BIN)
	$(BENCH_BIN) --json $(B)/bench.json --plots $(B)/bench-plots $(ARGS)

bench-quick: $(BENCH_BIN)
	$(BENCH_BIN) --quick $(ARGS)

-include $(BENCH_OBJS:.o=.d)
