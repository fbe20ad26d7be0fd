# SPDX-License-Identifier: MIT
# libshmrpc: plain Makefile. `make V=1` shows the commands.
#   make            library (static + shared) and tools
#   make demo       install missing Debian packages, build, run the demo
#   make test       install missing Debian packages, build, run every test
#   make asan/tsan  the tests under AddressSanitizer+UBSan / ThreadSanitizer
#   make install    honours DESTDIR and PREFIX

.DELETE_ON_ERROR:
.SUFFIXES:

VERSION := 0.1.0
SOVER := 0
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CC ?= cc
CFLAGS ?= -O2 -g
B ?= build
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes \
	-fvisibility=hidden -pthread -Iinclude -Ilib -MMD -MP
override LDLIBS += -pthread

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
LIB_DEPS := $(shell pkg-config --libs liburing 2>/dev/null || echo -luring)

.PHONY: all lib clean
all: lib

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
	$(Q)$(CC) $(CFLAGS) -shared -Wl,-soname,libshmrpc.so.$(SOVER) \
		-Wl,--version-script=lib/libshmrpc.map -o $@ $(LIB_PIC_OBJS) $(LIB_DEPS) $(LDLIBS)
	$(Q)ln -sf libshmrpc.so.$(VERSION) $(B)/libshmrpc.so.$(SOVER)
	$(Q)ln -sf libshmrpc.so.$(SOVER) $(B)/libshmrpc.so

clean:
	rm -rf $(B) build-asan build-tsan

-include $(LIB_OBJS:.o=.d) $(LIB_PIC_OBJS:.o=.d)
