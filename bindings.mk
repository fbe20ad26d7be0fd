# SPDX-License-Identifier: MIT
# The bindings, a fragment of the top Makefile (`include bindings.mk`, after
# the library's and the tests' rules):
#   python/shmrpc       the Python package (cffi, ABI mode: nothing to build);
#                       `make install` puts it where $(PYTHON) finds it for
#                       $(PREFIX) (python/sitedir.py says where)
#   include/shmrpc.hpp  the C++17 header, installed next to shmrpc.h
# Their tests, run by scripts/run-tests.sh like every $(B)/tests/test_*:
#   test_cpp, test_cpp_noexc  tests/test_cpp.cc, with and without exceptions
#   test_python               tests/python (pytest) on $(B)/libshmrpc.so.0
# and tests/echo_peer.c, a C peer of the Python tests.
# `make bench-python`: python/bench.py, a Python round trip through libshmrpc
# next to the same over a Unix socket (`make bench` ends with it).

PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
# computed once, when first used (install, uninstall)
PYTHONDIR ?= $(eval PYTHONDIR := $(shell $(PYTHON) python/sitedir.py $(PREFIX)))$(PYTHONDIR)
PY_SRCS := $(wildcard python/shmrpc/*.py)
# The project's C flags (sanitizers included) without the C-only ones.
CXX_TEST_FLAGS = -std=c++17 -Wall -Wextra -Werror \
	$(filter-out -std=% -Wstrict-prototypes,$(CFLAGS))

tests: $(B)/tests/test_cpp $(B)/tests/test_cpp_noexc $(B)/tests/test_python

$(B)/tests/test_cpp: tests/test_cpp.cc include/shmrpc.hpp $(LIB_A)
	$(call msg,CXXLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CXX) $(CXX_TEST_FLAGS) -o $@ $< $(LIB_A) $(LIB_DEPS) $(LDLIBS)

$(B)/tests/test_cpp_noexc: tests/test_cpp.cc include/shmrpc.hpp $(LIB_A)
	$(call msg,CXXLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CXX) $(CXX_TEST_FLAGS) -fno-exceptions -fno-rtti -o $@ $< $(LIB_A) $(LIB_DEPS) $(LDLIBS)

$(B)/tests/echo_peer: tests/echo_peer.c $(LIB_A)
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIB_A) $(LIB_DEPS) $(LDLIBS)

# A launcher, so the pytest suite runs once per backend like the programs.
$(B)/tests/test_python: tests/python/run.sh $(LIB_SO) $(B)/tests/echo_peer
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)printf '#!/bin/sh\nexec "%s/tests/python/run.sh" "%s" "$$@"\n' \
		"$(CURDIR)" "$(abspath $(B))" >$@
	$(Q)chmod +x $@

.PHONY: install-bindings uninstall-bindings bench-python
install: install-bindings
uninstall: uninstall-bindings

install-bindings:
	install -d $(DESTDIR)$(INCLUDEDIR)
	install -m 0644 include/shmrpc.hpp $(DESTDIR)$(INCLUDEDIR)/shmrpc.hpp
	$(if $(PYTHONDIR),,@echo "install: no $(PYTHON): the Python package is not installed")
	$(if $(PYTHONDIR),install -d $(DESTDIR)$(PYTHONDIR)/shmrpc)
	$(if $(PYTHONDIR),install -m 0644 $(PY_SRCS) $(DESTDIR)$(PYTHONDIR)/shmrpc/)
	$(if $(PYTHONDIR),printf '# Written by make install: where libshmrpc.so.0 went.\nLIBDIR = "%s"\n' \
		"$(LIBDIR)" >$(DESTDIR)$(PYTHONDIR)/shmrpc/_config.py)

uninstall-bindings:
	rm -f $(DESTDIR)$(INCLUDEDIR)/shmrpc.hpp
	$(if $(PYTHONDIR),rm -rf $(DESTDIR)$(PYTHONDIR)/shmrpc)

bench-python: $(LIB_SO)
	$(Q)SHMRPC_LIBRARY=$(abspath $(B))/libshmrpc.so.$(SOVER) PYTHONPATH=python \
		$(PYTHON) python/bench.py $(PYBENCH_ARGS)
