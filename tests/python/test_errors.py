# SPDX-License-Identifier: MIT
"""Every error the library returns arrives as shmrpc.Error, an OSError of
the errno's built-in subclass, with the library's text."""
import errno
import os
import pickle
import subprocess
import sys
import textwrap
import threading

import pytest

import shmrpc
from conftest import ROOT, shm_files


def check(e, err, cls=None):
    assert isinstance(e, shmrpc.Error) and isinstance(e, OSError)
    assert e.errno == err, (e.errno, err, e)
    if cls is not None:
        assert isinstance(e, cls)
    else:
        assert type(e) is shmrpc.Error  # no built-in subclass for this errno
    assert e.strerror and str(e).startswith(f"[Errno {err}] ")


def test_blocking_and_timeout(pair):
    a, b = pair
    with pytest.raises(BlockingIOError) as e:
        b.recv(0)
    check(e.value, errno.EAGAIN, BlockingIOError)
    with pytest.raises(TimeoutError) as e:
        b.recv(0.001)
    check(e.value, errno.ETIMEDOUT, TimeoutError)


def test_errors_pickle(pair):
    a, b = pair
    with pytest.raises(FileNotFoundError) as e:
        a.send("nobody", b"")
    copy = pickle.loads(pickle.dumps(e.value))
    assert type(copy) is type(e.value) and copy.errno == errno.ENOENT
    assert copy.strerror == e.value.strerror


def test_exists_and_not_found(pair, domain):
    a, b = pair
    with pytest.raises(FileExistsError) as e:
        shmrpc.Node("a", domain=domain)
    check(e.value, errno.EEXIST, FileExistsError)
    with pytest.raises(FileNotFoundError) as e:
        a.send("nobody", b"x")
    check(e.value, errno.ENOENT, FileNotFoundError)
    assert "nobody" in e.value.strerror


def test_broken_pipe_after_the_peer_left(domain):
    with shmrpc.Node("a", domain=domain) as a:
        b = shmrpc.Node("b", domain=domain)
        a.send("b", b"connects")
        b.close()
        with pytest.raises(BrokenPipeError) as e:
            a.send("b", b"x")
        check(e.value, errno.EPIPE, BrokenPipeError)
        with shmrpc.Node("b", domain=domain) as b2:  # a new one: sends go to it
            a.send("b", b"new")
            assert b2.recv(1) == (b"new", "a")


def test_invalid_and_too_long(pair, domain):
    a, b = pair
    with pytest.raises(OSError) as e:
        a.send("a", b"to myself")
    check(e.value, errno.EINVAL)
    with pytest.raises(OSError) as e:
        shmrpc.Node(".hidden", domain=domain)
    check(e.value, errno.EINVAL)
    assert "'.hidden'" in e.value.strerror
    with pytest.raises(OSError) as e:
        shmrpc.Node("n", domain="x" * 64)
    check(e.value, errno.ENAMETOOLONG)
    with pytest.raises(OSError) as e:
        a.send("b", b"x" * (1 << 20))
    check(e.value, errno.EMSGSIZE)


def test_the_text_is_the_librarys(domain):
    with pytest.raises(OSError) as e:
        shmrpc.Node("n", domain=domain, ring_bytes=5000)
    check(e.value, errno.EINVAL)
    assert e.value.strerror == "opts.ring_bytes 5000: not a power of two in [4096, 1073741824]"
    assert shmrpc.last_error() == e.value.strerror
    with pytest.raises(OSError) as e:
        shmrpc.Node("n", domain=domain, backend="URING")
    assert "URING" in e.value.strerror


def test_no_stale_text_from_an_earlier_failure(pair, domain):
    """A failed call that records no text of its own must not show the
    text of an earlier failure of this thread (fails without the binding's
    mark in _lib.error while the library records text in open only)."""
    a, b = pair
    with pytest.raises(OSError):
        shmrpc.Node("n", domain=domain, ring_bytes=5000)
    with pytest.raises(OSError) as e:
        b.recv(0)  # shmrpc_recv records no text of its own
    check(e.value, errno.EAGAIN, BlockingIOError)
    assert "ring_bytes" not in e.value.strerror, e.value.strerror
    assert "out is NULL" not in e.value.strerror  # nor the binding's mark
    assert shmrpc.last_error() == e.value.strerror


def test_text_is_per_thread(domain):
    errs = {}

    def fail(name, **kw):
        try:
            shmrpc.Node(name, domain=domain, **kw)
        except OSError as e:
            errs[name] = (e.strerror, shmrpc.last_error())

    ts = [threading.Thread(target=fail, args=("r",), kwargs={"ring_bytes": 5000}),
          threading.Thread(target=fail, args=("m",), kwargs={"mode": 0o666})]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert "ring_bytes" in errs["r"][0] and errs["r"][0] == errs["r"][1]
    assert "mode" in errs["m"][0] and errs["m"][0] == errs["m"][1]


def test_busy_and_deadlock(pair):
    a, b = pair
    with pytest.raises(OSError) as e:
        with b.peek(0.001):
            pass
    a.send("b", b"x")
    with b.peek(1):
        with pytest.raises(OSError) as e:
            b.recv(0)  # the token: one receiver at a time
        check(e.value, errno.EBUSY)
    with a.reserve("b", 8):
        with pytest.raises(OSError) as e:
            a.send("b", b"same thread, same target")
        check(e.value, errno.EDEADLK)


def test_registry_full(domain):
    with shmrpc.Node("a", domain=domain, max_nodes=1):
        with pytest.raises(OSError) as e:
            shmrpc.Node("b", domain=domain)
        check(e.value, errno.ENOSPC)


def test_garbage_registry_is_eproto(domain):
    path = f"/dev/shm/shmrpc.{domain}.reg"
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.write(fd, os.urandom(8192))
    os.close(fd)
    try:
        with pytest.raises(OSError) as e:
            shmrpc.Node("a", domain=domain)
        check(e.value, errno.EPROTO)
    finally:
        os.unlink(path)


def test_forked_child_gets_echild(pair):
    a, b = pair
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            a.send("b", b"from the child")
        except ChildProcessError as e:
            code = 0 if e.errno == errno.ECHILD and isinstance(e, shmrpc.Error) else 2
        except BaseException:
            code = 3
        finally:
            os.write(w, b"%d" % code)
            os._exit(code)
    os.close(w)
    assert os.read(r, 1) == b"0"
    os.close(r)
    assert os.waitpid(pid, 0)[1] == 0
    a.send("b", b"parent still fine")
    assert b.recv(1) == (b"parent still fine", "a")


def run_py(code, *args, user=None, env_drop=()):
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                          capture_output=True, text=True, timeout=60, user=user, cwd=ROOT)


def test_permission_denied_for_another_user(domain):
    if os.geteuid() != 0:
        pytest.skip("needs root to run a peer as another user")
    with shmrpc.Node("owner", domain=domain, mode=0o600):
        r = run_py("""
            import errno, sys, shmrpc
            try:
                shmrpc.Node("intruder", domain=sys.argv[1])
            except PermissionError as e:
                print("denied", e.errno in (errno.EACCES, errno.EPERM), e.strerror)
            """, domain, user=65534)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("denied True"), r.stdout


# A seccomp filter making io_uring_setup fail with ENOSYS, as Docker's
# default profile does: the library must fall back to futex (and log why),
# and a forced uring must be EOPNOTSUPP.
SECCOMP = """
import ctypes, struct
NR_io_uring_setup = 425
filt = [(0x20, 0, 0, 0),                                  # A = syscall nr
        (0x15, 0, 1, NR_io_uring_setup),                  # A == io_uring_setup?
        (0x06, 0, 0, 0x00050000 | 38),                    # errno ENOSYS
        (0x06, 0, 0, 0x7fff0000)]                         # allow
buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *f) for f in filt))
prog = struct.pack("HxxxxxxQ", len(filt), ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong,
                       ctypes.c_ulong]
assert libc.prctl(38, 1, None, 0, 0) == 0                 # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, prog, 0, 0) == 0, ctypes.get_errno()  # SECCOMP_MODE_FILTER
"""


def test_uring_filtered_falls_back_and_logs(domain):
    if os.uname().machine != "x86_64":
        pytest.skip("the seccomp filter is written for x86_64")
    r = run_py(SECCOMP + """
import sys, shmrpc
logs = []
shmrpc.set_log(lambda level, msg: logs.append((level, msg)))
assert not shmrpc.backend_available("uring")
try:
    shmrpc.Node("forced", domain=sys.argv[1], backend="uring")
except OSError as e:
    print("forced", e.errno, type(e).__name__, e.strerror)
with shmrpc.Node("auto", domain=sys.argv[1]) as n:
    print("auto", n.backend)
print("logs", logs)
shmrpc.set_log(None)
""", domain, env_drop=("SHMRPC_BACKEND",))
    assert r.returncode == 0, r.stderr
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert out["forced"].startswith(f"{errno.EOPNOTSUPP} Error backend uring: cannot work")
    assert out["auto"] == "futex"
    assert "backend uring unavailable" in out["logs"] and "(1, " in out["logs"]
    assert not shm_files(domain)
