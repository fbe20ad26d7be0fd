# SPDX-License-Identifier: MIT
# tests/fault: fault injection (issue 9, section 4). The fault build of the
# library is lib/ compiled again with AddressSanitizer (its LeakSanitizer
# checks every process of the sweep at exit), archived, and the references
# its objects make to every call below renamed to fault_<call> (objcopy
# --redefine-syms), which tests/fault/interpose.c defines: it counts the
# library's calls and fails the N-th (tests/fault/fault.h).
# tests/test_fault.c sweeps every N of each scenario, in `make test` once
# per backend (scripts/run-tests.sh); `make faults` runs that sweep alone,
# and again with the alternative errnos.

# Imports the interposer fails (free: only counted, for the heap check).
FAULT_WRAP := calloc realloc free shm_open open opendir read pread fstat fstatat stat lstat \
	fallocate posix_fallocate ftruncate mmap fcntl getrandom nanosleep eventfd \
	eventfd_read epoll_create1 epoll_ctl epoll_wait syscall pthread_create \
	pthread_key_create pthread_setspecific pthread_atfork io_uring_queue_init \
	io_uring_register_probe io_uring_register_eventfd \
	io_uring_register_sync_cancel io_uring_submit io_uring_submit_and_wait_timeout \
	sodium_init

# Imports that cannot fail where the library uses them, or whose failure
# is their answer:
#  - pure functions, identity, clocks, formatting, the environment;
#    crypto_shorthash (always 0);
#  - glibc's locks, conditions and once: their only failures are misuse
#    (EINVAL, EDEADLK; the inits always succeed), and a clocklock's or a
#    timed condition wait's ETIMEDOUT is the timeout the library asked
#    for; detach, join, key_delete, sigmask likewise;
#  - releases: close (the descriptor is released whatever it returns, and
#    the library never reads it), closedir, munmap (of whole mappings:
#    nothing to split), io_uring_queue_exit (void);
#    shm_unlink (ENOENT, EACCES: answers, not resources);
#  - eventfd_write (fails only when the counter would pass 2^64 - 2: every
#    receive reads it down to 0); readdir (EBADF only); fchmod of a file
#    the process just created; getgroups, getrlimit;
#  - probes whose error is the answer: kill(pid, 0) (ESRCH, EPERM),
#    lseek(SEEK_DATA/SEEK_HOLE) (ENXIO: holes to the end).
FAULT_PASS := _GLOBAL_OFFSET_TABLE_ __ctype_b_loc __errno_location __stack_chk_fail \
	clock_gettime getegid geteuid getpid getenv memchr memcpy memmove memset snprintf \
	vsnprintf fprintf stderr strchr strcmp strerror strlen strncmp strncpy strnlen strrchr \
	strtol strtoull sigfillset pthread_self sched_yield crypto_shorthash \
	pthread_cond_destroy pthread_cond_init pthread_cond_signal pthread_cond_wait \
	pthread_cond_timedwait pthread_condattr_destroy pthread_condattr_init pthread_condattr_setclock \
	pthread_mutex_clocklock pthread_mutex_timedlock pthread_mutex_destroy \
	pthread_mutex_init pthread_mutex_lock pthread_mutex_trylock pthread_mutex_unlock \
	pthread_once pthread_rwlock_destroy pthread_rwlock_init pthread_rwlock_rdlock \
	pthread_rwlock_unlock pthread_rwlock_wrlock pthread_detach pthread_join \
	pthread_key_delete pthread_sigmask close closedir munmap io_uring_queue_exit \
	shm_unlink eventfd_write readdir fchmod getgroups getrlimit kill \
	lseek

FAULT_B := $(B)/fault
FAULT_LIB := $(FAULT_B)/libshmrpc_fault.a
FAULT_OBJS := $(B)/tests/fault/interpose.o $(B)/tests/fault/runner.o $(B)/tests/fault/sweep.o
# AddressSanitizer, for its leak check, unless the build has ThreadSanitizer
# (make tsan: the two do not mix; test_fault is built there, not run).
FAULT_SAN := $(if $(findstring -fsanitize=thread,$(CFLAGS)),,-fsanitize=address \
	-fno-omit-frame-pointer)
FAULT_SAN_A := $(FAULT_B)/libshmrpc_san.a
FAULT_SAN_OBJS := $(LIB_SRCS:lib/%.c=$(FAULT_B)/lib/%.o)

$(FAULT_B)/lib/%.o: lib/%.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(FAULT_SAN) -c -o $@ $<

$(FAULT_SAN_A): $(FAULT_SAN_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

$(FAULT_B)/syms: tests/fault/fault.mk
	$(Q)mkdir -p $(@D)
	$(Q)for s in $(FAULT_WRAP); do echo "$$s fault_$$s"; done > $@

$(FAULT_LIB): $(FAULT_SAN_A) $(FAULT_B)/syms
	$(call msg,OBJCOPY,$@)
	$(Q)objcopy --redefine-syms=$(FAULT_B)/syms $(FAULT_SAN_A) $@
	$(Q)ranlib $@

# Imports of the library in neither list (sanitizer runtimes aside): the
# test fails on any, so that a new call of the library is not left out of
# the sweep unseen.
$(FAULT_B)/unclassified: $(FAULT_SAN_A) tests/fault/fault.mk
	$(Q)mkdir -p $(@D)
	$(Q)for s in $(FAULT_WRAP) $(FAULT_PASS); do echo "$$s"; done > $@.known
	$(Q)nm -u $(FAULT_SAN_A) | awk '$$1 == "U" { print $$2 }' | sort -u | \
		grep -vE '^(shmrpc|__(asan|ubsan|lsan|tsan|sanitizer|sancov))' | \
		grep -vxF -f $@.known > $@ || true

$(B)/tests/fault/%.o: tests/fault/%.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -Itests -c -o $@ $<

$(B)/tests/test_fault: tests/test_fault.c $(FAULT_OBJS) $(TH_OBJS) $(FAULT_LIB) \
		$(FAULT_B)/unclassified
	$(call msg,CCLD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(FAULT_SAN) -Itests -Itests/fault \
		-DFAULT_UNCLASSIFIED='"$(CURDIR)/$(FAULT_B)/unclassified"' -o $@ $< \
		$(FAULT_OBJS) $(TH_OBJS) $(FAULT_LIB) $(LIB_DEPS) $(TEST_LIBS) $(LDLIBS)

# The sweep alone, both backends, then again with the alternative errnos
# (FAULT_ALT=1: tests/fault/interpose.c). FAULT_VERBOSE=1, FAULT_N=n,
# TEST_FILTER=scenario: tests/test_fault.c.
.PHONY: faults
faults: $(B)/tests/test_fault $(B)/tools/shmrpc-info
	$(Q)SHMRPC_TESTS=test_fault SHMRPC_NO_MODEL=1 scripts/run-tests.sh $(B)
	$(Q)FAULT_ALT=1 SHMRPC_TESTS=test_fault SHMRPC_NO_MODEL=1 scripts/run-tests.sh $(B)

-include $(wildcard $(B)/tests/fault/*.d $(FAULT_B)/lib/*.d)
