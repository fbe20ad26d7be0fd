# SPDX-License-Identifier: MIT
# The eBPF exit probe. Included by the top Makefile; usable alone:
#   make -f bpf/bpf.mk [B=build] bpf     objects + skeletons under $(B)/bpf
#   make -f bpf/bpf.mk vmlinux           regenerate bpf/vmlinux.h from this kernel
#   make -f bpf/bpf.mk bpf-test          build and run tests/test_probe.c (root)
# Needs clang (BPF target) and bpftool (Debian: clang, bpftool, libbpf-dev).

B ?= build
BPF_CLANG ?= clang
BPFTOOL ?= bpftool
# DWARF is not needed at run time (BTF is kept): strip it to shrink the skeletons.
BPF_STRIP ?= llvm-strip
BPF_ARCH ?= $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' \
	-e 's/ppc64le/powerpc/' -e 's/riscv64/riscv/' -e 's/s390x/s390/')
BPF_CFLAGS ?= -g -O2
override BPF_CFLAGS += -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -Wall -Ibpf -I$(B)/bpf

ifeq ($(V),1)
BPF_Q :=
else
BPF_Q := @
endif

BPF_OBJS := $(B)/bpf/shmrpc_exit.bpf.o $(B)/bpf/shmrpc_exit_tp.bpf.o
BPF_SKELS := $(B)/bpf/shmrpc_exit.skel.h $(B)/bpf/shmrpc_exit_tp.skel.h
BPF_SRC_DEPS := bpf/shmrpc_exit.bpf.c bpf/shmrpc_exit.h bpf/vmlinux.h

.PHONY: bpf vmlinux bpf-test
.DELETE_ON_ERROR:

bpf: $(BPF_OBJS) $(BPF_SKELS)

$(B)/bpf/shmrpc_exit.bpf.o: $(BPF_SRC_DEPS)
	@printf '  %-7s %s\n' BPF $@
	$(BPF_Q)mkdir -p $(@D)
	$(BPF_Q)$(BPF_CLANG) $(BPF_CFLAGS) -c bpf/shmrpc_exit.bpf.c -o $@
	$(BPF_Q)$(BPF_STRIP) -g $@

$(B)/bpf/shmrpc_exit_tp.bpf.o: $(BPF_SRC_DEPS)
	@printf '  %-7s %s\n' BPF $@
	$(BPF_Q)mkdir -p $(@D)
	$(BPF_Q)$(BPF_CLANG) $(BPF_CFLAGS) -DSHMRPC_EXIT_TRACEPOINT \
		-c bpf/shmrpc_exit.bpf.c -o $@
	$(BPF_Q)$(BPF_STRIP) -g $@

# The skeleton embeds the object; its name (shmrpc_exit_bpf,
# shmrpc_exit_tp_bpf) comes from the file name.
$(B)/bpf/%.skel.h: $(B)/bpf/%.bpf.o
	@printf '  %-7s %s\n' SKEL $@
	$(BPF_Q)$(BPFTOOL) gen skeleton $< > $@

vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h.tmp
	mv bpf/vmlinux.h.tmp bpf/vmlinux.h

# The user-space module (tools/probe.c, linked into the reaper) and its test.
PROBE_CC ?= $(CC)
PROBE_CFLAGS ?= -O2 -g
override PROBE_CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes \
	-fvisibility=hidden -pthread -Ibpf -I$(B)/bpf -Itools
PROBE_LDLIBS := -lbpf -lelf -lz -pthread

$(B)/tools/probe.o: tools/probe.c tools/probe.h bpf/shmrpc_exit.h $(BPF_SKELS)
	@printf '  %-7s %s\n' CC $@
	$(BPF_Q)mkdir -p $(@D)
	$(BPF_Q)$(PROBE_CC) $(PROBE_CFLAGS) -c tools/probe.c -o $@

$(B)/tests/test_probe: tests/test_probe.c $(B)/tools/probe.o
	@printf '  %-7s %s\n' CCLD $@
	$(BPF_Q)mkdir -p $(@D)
	$(BPF_Q)$(PROBE_CC) $(PROBE_CFLAGS) -DSHMRPC_BPF_OBJ='"$(B)/bpf/shmrpc_exit.bpf.o"' \
		tests/test_probe.c $(B)/tools/probe.o -o $@ $(PROBE_LDLIBS) -lcmocka

bpf-test: $(B)/tests/test_probe $(BPF_OBJS)
	$(B)/tests/test_probe
