# SPDX-License-Identifier: MIT
# libshmrpc: plain Makefile. `make V=1` shows the commands.
#   make            library (static + shared) and tools
#   make demo       install missing Debian packages, build, run the demo
#   make test       install missing Debian packages, build, run every test
#   make asan/tsan  the tests under AddressSanitizer+UBSan / ThreadSanitizer
#   make bench      install missing Debian packages, build, run the benchmark's
#                   standard set (< 5 min): table, build/bench.json, build/bench-plots/
#   make bench-quick  a smoke run of it (< 30 s)
#   make fuzz       build the libFuzzer harnesses with clang, run each for
#                   FUZZ_SECONDS (default 60); tests/fuzz/fuzz.mk
#   make faults     the fault-injection sweep alone, both backends (make test
#                   runs it too); tests/fault/fault.mk
#   make install    honours DESTDIR and PREFIX

.DELETE_ON_ERROR:
.SUFFIXES:

VERSION := 0.3.0
SOVER := 0
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# systemd searches /usr/local/lib/systemd/system too; distro packages set
# SYSTEMDUNITDIR=/lib/systemd/system (pkg-config systemd --variable=systemdsystemunitdir).
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system

CC ?= cc
CFLAGS ?= -O2 -g
B ?= build
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes \
	-fvisibility=hidden -pthread -Iinclude -Ilib -MMD -MP
override LDLIBS += -pthread
# What the tools' --version prints (tools/version.h).
override CFLAGS += -DSHMRPC_TOOLS_VERSION='"$(VERSION)"'

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-7s %s\n' $(1) $(2)
endif

LIB_SRCS := $(wildcard lib/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/%.o)
LIB_PIC_OBJS := $(LIB_SRCS:%.c=$(B)/pic/%.o)
LIB_A := $(B)/libshmrpc.a
LIB_SO := $(B)/libshmrpc.so.$(VERSION)
LIB_DEPS := $(shell pkg-config --libs liburing libsodium 2>/dev/null || echo -luring -lsodium)

.PHONY: all lib tools clean tests test
all: lib tools bpf bench-build bridge

include bpf/bpf.mk

# The tools see three headers of the project and no other: shmrpc.h (the
# API), lib/inspect.h (their view of a domain) and lib/layout.h (the files'
# format). Their include path is a directory of copies of exactly those
# (TOOLS_CFLAGS instead of -Iinclude -Ilib), so that a tool including any
# other lib/ header fails to build.
TOOLS_INC := $(B)/include-tools
TOOLS_HDRS := $(TOOLS_INC)/shmrpc.h $(TOOLS_INC)/inspect.h $(TOOLS_INC)/layout.h
TOOLS_CFLAGS := $(filter-out -Iinclude -Ilib,$(CFLAGS)) -I$(TOOLS_INC)

$(TOOLS_INC)/shmrpc.h: include/shmrpc.h
	$(Q)mkdir -p $(@D)
	$(Q)cp $< $@

$(TOOLS_INC)/%.h: lib/%.h
	$(Q)mkdir -p $(@D)
	$(Q)cp $< $@

# tools/shmrpc-bench (its own fragment); the libshmrpc transports link the
# static library.
BENCH_EXTRA_CFLAGS := -I$(TOOLS_INC)
BENCH_EXTRA_DEPS := $(LIB_A)
BENCH_EXTRA_LIBS := $(LIB_A) $(LIB_DEPS)
include tools/bench/bench.mk
$(BENCH_OBJS): | $(TOOLS_HDRS)
# The tests' harness, before bridge.mk (its test_bridge rule lists it:
# prerequisites expand where the rule is read).
TH_OBJS := $(B)/tests/harness.o $(B)/tests/harness_shm.o
include tools/bridge/bridge.mk

TOOLS := $(B)/tools/shmrpc-info $(B)/tools/shmrpc-demo $(B)/tools/shmrpc-top \
	$(B)/tools/shmrpc-reaper $(B)/tools/shmrpc-kv
tools: $(TOOLS)

# tools/shmrpc-top: several files (tools/top/top.h says which does what) and
# ncurses. test_top links its core (no UI, no main) to test the pieces.
NCURSES_LIBS := $(shell pkg-config --libs ncursesw 2>/dev/null || echo -lncursesw)
TOP_SRCS := $(wildcard tools/top/*.c)
TOP_OBJS := $(TOP_SRCS:%.c=$(B)/%.o)
TOP_CORE_OBJS := $(filter-out $(B)/tools/top/main.o $(B)/tools/top/ui.o,$(TOP_OBJS))

$(B)/tools/top/%.o: tools/top/%.c | $(TOOLS_HDRS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(TOOLS_CFLAGS) -Itools -c -o $@ $<

$(B)/tools/shmrpc-top: $(TOP_OBJS) $(LIB_A)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -o $@ $(TOP_OBJS) $(LIB_A) $(LIB_DEPS) $(NCURSES_LIBS) -lm $(LDLIBS)

# tools/shmrpc-info: tools/info/*.c, shmrpc-top's scan (the domains present),
# the probe's skeletons (does it load here?) and libbpf.
INFO_OBJS := $(patsubst %.c,$(B)/%.o,$(wildcard tools/info/*.c))

$(B)/tools/info/%.o: tools/info/%.c $(BPF_SKELS) | $(TOOLS_HDRS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(TOOLS_CFLAGS) -Itools -Itools/top -Ibpf -I$(B)/bpf -c -o $@ $<

$(B)/tools/shmrpc-info: $(INFO_OBJS) $(TOP_CORE_OBJS) $(LIB_A)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $(INFO_OBJS) $(TOP_CORE_OBJS) $(LIB_A) $(LIB_DEPS) \
		$(PROBE_LDLIBS) -lm $(LDLIBS)

# tools/shmrpc-reaper: tools/reaper/*.c (but killtime*.c, the kill-to-cleaned
# module for tests and the bench), the probe module and its skeletons
# (bpf/bpf.mk), libbpf.
KILLTIME_OBJS := $(B)/tools/reaper/killtime.o $(B)/tools/reaper/killtime_obs.o
REAPER_SRCS := $(filter-out tools/reaper/killtime%,$(wildcard tools/reaper/*.c))
REAPER_OBJS := $(REAPER_SRCS:%.c=$(B)/%.o)
REAPER_CFLAGS := -Itools -Ibpf -I$(B)/bpf

$(B)/tools/reaper/%.o: tools/reaper/%.c | $(TOOLS_HDRS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(TOOLS_CFLAGS) $(REAPER_CFLAGS) -c -o $@ $<

$(B)/tools/shmrpc-reaper: $(REAPER_OBJS) $(B)/tools/probe.o $(LIB_A)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $(REAPER_OBJS) $(B)/tools/probe.o $(LIB_A) $(LIB_DEPS) \
		$(PROBE_LDLIBS) $(LDLIBS)

$(B)/tools/%: tools/%.c $(LIB_A) | $(TOOLS_HDRS)
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(TOOLS_CFLAGS) -o $@ $< $(LIB_A) $(LIB_DEPS) $(LDLIBS)

# test_probe needs libbpf and the probe's skeletons: bpf/bpf.mk builds it.
TEST_SRCS := $(filter-out tests/test_probe.c,$(wildcard tests/test_*.c))
TESTS := $(TEST_SRCS:tests/%.c=$(B)/tests/%) $(B)/tests/test_probe
TEST_LIBS := -lcmocka

tests: $(TESTS)

# The reaper's tests run shmrpc-reaper (and bpftool on the probe's objects),
# and link the kill-to-cleaned module; no libbpf of their own.
REAPER_TESTS := $(B)/tests/test_reaper $(B)/tests/test_chaos $(B)/tests/test_reaper_owner \
	$(B)/tests/test_reaper_cli

$(REAPER_TESTS): $(B)/tests/test_%: tests/test_%.c $(TH_OBJS) \
		$(KILLTIME_OBJS) $(LIB_A) $(B)/tools/shmrpc-reaper $(BPF_OBJS)
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -Itools/reaper -DSHMRPC_REAPER_BIN='"$(B)/tools/shmrpc-reaper"' \
		-DSHMRPC_BPF_OBJ_DIR='"$(B)/bpf"' -o $@ $< $(TH_OBJS) \
		$(KILLTIME_OBJS) $(LIB_A) $(LIB_DEPS) $(TEST_LIBS) $(LDLIBS)

# The multi-user security suite (tests/test_security*.c, root): its helpers
# (tests/harness_sec*.c), the kill-to-cleaned observer, the reaper and
# shmrpc-top it attacks.
SEC_TESTS := $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/test_security*.c))
SEC_HARNESS := $(B)/tests/harness_sec.o $(B)/tests/harness_sec_case.o \
	$(B)/tests/harness_sec_snap.o

$(SEC_HARNESS): $(B)/tests/%.o: tests/%.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -Itools/reaper -DSHMRPC_REAPER_BIN='"$(B)/tools/shmrpc-reaper"' \
		-c -o $@ $<

$(SEC_TESTS): $(B)/tests/test_%: tests/test_%.c $(TH_OBJS) $(SEC_HARNESS) \
		$(KILLTIME_OBJS) $(LIB_A) $(B)/tools/shmrpc-reaper $(B)/tools/shmrpc-top
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -Itools/reaper -DSHMRPC_REAPER_BIN='"$(B)/tools/shmrpc-reaper"' \
		-DSHMRPC_TOP_BIN='"$(B)/tools/shmrpc-top"' -o $@ $< $(TH_OBJS) \
		$(SEC_HARNESS) $(KILLTIME_OBJS) $(LIB_A) $(LIB_DEPS) $(TEST_LIBS) $(LDLIBS)

$(TH_OBJS): $(B)/tests/%.o: tests/%.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(B)/tests/test_%: tests/test_%.c $(TH_OBJS) $(LIB_A)
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(TH_OBJS) $(LIB_A) $(LIB_DEPS) $(TEST_LIBS) $(LDLIBS)

# test_unload dlopens the shared library itself (it links no libshmrpc).
$(B)/tests/test_unload: tests/test_unload.c $(LIB_SO)
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -Iinclude -DSHMRPC_LIB_SO='"$(CURDIR)/$(B)/libshmrpc.so.$(SOVER)"' \
		-o $@ $< $(TEST_LIBS) -ldl

# test_readme runs the README's example, cut out of README.md.
$(B)/tests/readme_example.c: README.md scripts/readme-example.sh
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)scripts/readme-example.sh README.md > $@

$(B)/tests/test_readme: tests/test_readme.c $(B)/tests/readme_example.c $(B)/tests/harness.o \
		$(LIB_A)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(B)/tests/readme_example.c $(B)/tests/harness.o $(LIB_A) \
		$(LIB_DEPS) $(TEST_LIBS) $(LDLIBS)

# test_tools runs every tool's binary.
$(B)/tests/test_tools: | $(TOOLS) $(BENCH_BIN)

# test_top drives the shmrpc-top binary and tests its core pieces directly.
$(B)/tests/test_top: tests/test_top.c $(TH_OBJS) $(TOP_CORE_OBJS) $(LIB_A) \
		$(B)/tools/shmrpc-top
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -Itools/top -o $@ $< $(TH_OBJS) $(TOP_CORE_OBJS) $(LIB_A) \
		$(LIB_DEPS) $(TEST_LIBS) -lm $(LDLIBS)

.PHONY: demo
demo:
	$(Q)scripts/deps.sh build
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(B)/tools/shmrpc-demo

# libFuzzer harnesses and their replay in make test (tests/fuzz/fuzz.mk).
include tests/fuzz/fuzz.mk

# Fault injection: the library's N-th call fails, for every N
# (tests/fault/fault.mk; `make faults`).
include tests/fault/fault.mk

# Runs every test program (scripts/run-tests.sh says how).
test:
	$(Q)scripts/deps.sh test
	$(Q)$(MAKE) --no-print-directory all tests
	$(Q)scripts/run-tests.sh $(B)
	$(Q)scripts/check-man.sh

lib: $(LIB_A) $(LIB_SO)

$(B)/lib/%.o: lib/%.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(B)/pic/lib/%.o: lib/%.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -fPIC -c -o $@ $<

$(LIB_A): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(LIB_PIC_OBJS) lib/libshmrpc.map
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) -shared -Wl,-soname,libshmrpc.so.$(SOVER) -Wl,-z,nodelete \
		-Wl,--version-script=lib/libshmrpc.map -o $@ $(LIB_PIC_OBJS) $(LIB_DEPS) $(LDLIBS)
	$(Q)ln -sf libshmrpc.so.$(VERSION) $(B)/libshmrpc.so.$(SOVER)
	$(Q)ln -sf libshmrpc.so.$(SOVER) $(B)/libshmrpc.so

PC_SED := -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	-e 's|@LIBS_PRIVATE@|$(LIB_DEPS)|'

# Man pages (docs/man/; scripts/check-man.sh keeps the API's in agreement
# with include/shmrpc.h): a page per group of calls, a .so link per function.
MAN1 := $(wildcard docs/man/*.1)
MAN3 := $(wildcard docs/man/*.3)
MAN8 := $(wildcard docs/man/*.8)

.PHONY: install uninstall
install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(BINDIR)
	install -m 0644 include/shmrpc.h $(DESTDIR)$(INCLUDEDIR)/shmrpc.h
	install -m 0644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libshmrpc.a
	install -m 0755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/libshmrpc.so.$(VERSION)
	ln -sf libshmrpc.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libshmrpc.so.$(SOVER)
	ln -sf libshmrpc.so.$(SOVER) $(DESTDIR)$(LIBDIR)/libshmrpc.so
	sed $(PC_SED) lib/libshmrpc.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/libshmrpc.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/libshmrpc.pc
	install -m 0755 $(TOOLS) $(BENCH_BIN) $(BRIDGE_INSTALL) $(DESTDIR)$(BINDIR)/
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/
	install -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	sed -e 's|@BINDIR@|$(BINDIR)|' tools/reaper/shmrpc-reaper.service \
		> $(DESTDIR)$(SYSTEMDUNITDIR)/shmrpc-reaper.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/shmrpc-reaper.service
	@if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null; then ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/shmrpc.h $(DESTDIR)$(LIBDIR)/libshmrpc.a \
		$(DESTDIR)$(LIBDIR)/libshmrpc.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libshmrpc.so.$(SOVER) \
		$(DESTDIR)$(LIBDIR)/libshmrpc.so $(DESTDIR)$(PKGCONFIGDIR)/libshmrpc.pc \
		$(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(TOOLS) $(BENCH_BIN) $(BRIDGE_INSTALL))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN3))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8))) \
		$(DESTDIR)$(SYSTEMDUNITDIR)/shmrpc-reaper.service

SAN_ENV := ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0

.PHONY: asan tsan
asan:
	$(Q)$(MAKE) --no-print-directory B=build-asan \
		CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
		tools tests
	$(Q)$(SAN_ENV) scripts/run-tests.sh build-asan

# ThreadSanitizer cannot follow fork() from a multi-threaded process (it
# reports "dup thread with used id" in the child), and the programs that
# fork peers from parents that run threads (watchers, the futex backend's
# shmrpc_fd helper: test_fork, test_join, test_registry, test_reclaim,
# test_hostile, test_wake...) run under ASan only. The others are where threads race
# (test_events, test_peer and test_batch fork their peers before they start threads).
TSAN_TESTS := test_node test_send test_recv test_thread test_connect test_stats test_query \
	test_broadcast test_ring test_transport test_uring_compat test_probe test_wake_uring \
	test_events test_peer test_batch test_rpc
tsan:
	$(Q)$(MAKE) --no-print-directory B=build-tsan CFLAGS="-O1 -g -fsanitize=thread" tools tests
	$(Q)SHMRPC_TESTS="$(TSAN_TESTS)" \
		TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:die_after_fork=0 \
		scripts/run-tests.sh build-tsan

clean:
	rm -rf $(B) build-asan build-tsan build-fuzz

# The Python package and the C++ header, their tests, install and bench row.
include bindings.mk

# Header dependencies of every object (-MMD): a changed header rebuilds
# what includes it, the tools' and tests' objects too.
# (Not shmrpc-info.d: it names tools/shmrpc-info.c, now tools/info/main.c.)
-include $(LIB_OBJS:.o=.d) $(LIB_PIC_OBJS:.o=.d) \
	$(filter-out $(B)/tools/shmrpc-info.d, \
		$(wildcard $(B)/tests/*.d $(B)/tests/fuzz/*.d $(B)/fuzz/*.d $(B)/tools/*.d \
			$(B)/tools/*/*.d))
