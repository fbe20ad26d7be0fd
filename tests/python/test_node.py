# SPDX-License-Identifier: MIT
"""shmrpc.Node: every method, in one process (peers in other processes are
in test_peers.py)."""
import array
import errno
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import shmrpc
from conftest import shm_files, wait_for


def test_open_close_context_manager(domain):
    with shmrpc.Node("solo", domain=domain) as n:
        assert n.name == "solo" and n.domain == domain
        assert n.backend in ("uring", "futex")
        assert os.environ.get("SHMRPC_BACKEND") in (None, n.backend)
        assert not n.closed
        assert "solo" in repr(n) and n.backend in repr(n)
        assert shm_files(domain)
    assert n.closed and "closed" in repr(n)
    n.close()  # idempotent
    assert not shm_files(domain)  # the last one out leaves nothing
    with pytest.raises(shmrpc.NodeClosed):
        n.send("x", b"")
    with pytest.raises(ValueError):  # NodeClosed is a ValueError, as for closed files
        n.nodes()
    with pytest.raises(shmrpc.NodeClosed):
        n.fileno()
    assert n.name == "solo"  # still readable


def test_garbage_collected_node_leaves(domain):
    n = shmrpc.Node("gc", domain=domain)
    del n
    wait_for(lambda: not shm_files(domain), what="files of a collected node")


def test_options(domain):
    with shmrpc.Node("o", domain=domain, ring_bytes=8192, max_nodes=4, mode=0o660,
                     spin_us=0) as n, shmrpc.Node("p", domain=domain) as p:
        assert n.max_size() == 8192 // 2 - 8
        assert p.max_size("o") == 8192 // 2 - 8
        assert p.max_size() == 256 * 1024 // 2 - 8
        reg = os.stat(f"/dev/shm/shmrpc.{domain}.reg")
        assert stat.S_IMODE(reg.st_mode) == 0o660
        for i in range(2):  # max_nodes 4: two more fit, the fifth does not
            shmrpc.Node(f"q{i}", domain=domain).close()
        with shmrpc.Node("q0", domain=domain), shmrpc.Node("q1", domain=domain):
            with pytest.raises(OSError) as e:
                shmrpc.Node("q2", domain=domain)
            assert e.value.errno == errno.ENOSPC
    for be in ("uring", "futex"):
        if shmrpc.backend_available(be):
            with shmrpc.Node("b", domain=domain, backend=be) as n:
                assert n.backend == be
    with shmrpc.Node("s", domain=domain, spin_us=5) as n:
        assert n.backend == shmrpc.backend_default() or os.environ.get("SHMRPC_BACKEND")


@pytest.mark.parametrize("kw", [{"ring_bytes": -1}, {"ring_bytes": 2**32}, {"mode": -5},
                                {"max_nodes": 2**40}, {"spin_us": 2**31}])
def test_option_out_of_range(domain, kw):
    with pytest.raises(ValueError):
        shmrpc.Node("o", domain=domain, **kw)


@pytest.mark.parametrize("kw", [{"ring_bytes": 4096.0}, {"spin_us": "5"}, {"mode": True}])
def test_option_wrong_type(domain, kw):
    with pytest.raises(TypeError):
        shmrpc.Node("o", domain=domain, **kw)


def test_domain_from_environment(monkeypatch, domain):
    monkeypatch.setenv("SHMRPC_DOMAIN", domain)
    with shmrpc.Node("env") as n:
        assert n.domain == domain


def test_send_recv_bytes_likes(pair):
    a, b = pair
    for data in (b"hello", bytearray(b"ba"), memoryview(b"xmvx")[1:3], array.array("i", [1, 2]),
                 b""):
        a.send("b", data)
        got, sender = b.recv(timeout=1)
        assert got == bytes(data) and sender == "a"
        assert type(got) is bytes
    with pytest.raises(TypeError):
        a.send("b", "text is not bytes")
    with pytest.raises(TypeError):
        a.send(b"b", 42)


def test_names(pair):
    a, b = pair
    a.send(b"b", b"bytes name")
    assert b.recv(1) == (b"bytes name", "a")
    with pytest.raises(ValueError):
        a.send("b\0c", b"")
    with pytest.raises(TypeError):
        a.send(None, b"")
    with pytest.raises(OSError) as e:
        a.send("x" * 64, b"")
    assert e.value.errno == errno.ENAMETOOLONG


def test_recv_grows_its_buffer(pair):
    a, b = pair
    sizes = [1, 4095, 4096, 4097, 70000, 131064, 3]
    for n in sizes:
        a.send("b", bytes([n % 251]) * n)
    for n in sizes:
        data, _ = b.recv(1)
        assert len(data) == n and data == bytes([n % 251]) * n
    assert len(b._rbuf) == 131072  # grew once to fit, not per message


def test_recv_bufsize(pair):
    a, b = pair
    a.send("b", b"12345")
    with pytest.raises(OSError) as e:
        b.recv(0, bufsize=4)
    assert e.value.errno == errno.EMSGSIZE and "5 bytes" in e.value.strerror
    assert b.recv(0, bufsize=5) == (b"12345", "a")  # it stayed queued
    a.send("b", b"x" * 10000)
    with pytest.raises(OSError):
        b.recv(0, bufsize=9999)
    assert b.recv(0, bufsize=10**9)[0] == b"x" * 10000
    with pytest.raises(ValueError):
        b.recv(0, bufsize=-1)


def test_send_order_and_flush(pair):
    a, b = pair
    for i in range(100):
        a.send("b", b"%d" % i, defer=(i % 2 == 0))
    assert a.flush() >= 0
    assert [b.recv(1)[0] for _ in range(100)] == [b"%d" % i for i in range(100)]


def test_deferred_wake_then_flush(pair):
    """A receiver asleep in recv gets a deferred message once flush() runs
    (not before its safety timeout otherwise)."""
    a, b = pair
    a.send("b", b"connects")  # the ring exists before b sleeps on it
    assert b.recv(1) == (b"connects", "a")
    got = []
    slept = b.stats()["sleeps"]
    t = threading.Thread(target=lambda: got.append(b.recv(timeout=10)))
    t.start()
    wait_for(lambda: b.stats()["sleeps"] > slept, what="receiver asleep")
    a.send("b", b"deferred", defer=True)
    assert a.flush() == 1  # the one wake held back
    t.join(10)
    assert got == [(b"deferred", "a")]


def test_broadcast(domain):
    with shmrpc.Node("a", domain=domain) as a:
        assert a.broadcast(b"nobody") == 0
        with shmrpc.Node("b", domain=domain) as b, shmrpc.Node("c", domain=domain) as c:
            assert a.broadcast(b"all", timeout=1) == 2
            assert b.recv(1) == (b"all", "a") and c.recv(1) == (b"all", "a")
            with pytest.raises(OSError) as e:
                a.broadcast(b"x" * (1 << 20))
            assert e.value.errno == errno.EMSGSIZE


def test_queries(pair, domain):
    a, b = pair
    assert sorted(a.nodes()) == ["a", "b"]
    assert a.is_local("b") and not a.is_local("nobody")
    with pytest.raises(OSError) as e:
        a.is_local("bad name")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(FileNotFoundError):
        a.max_size("nobody")
    assert a.node_host("b") is None  # a node of this host
    with pytest.raises(FileNotFoundError):
        a.node_host("nobody")
    assert a.warmup() == 1 and b.warmup() == 1
    many = [shmrpc.Node(f"n{i}", domain=domain) for i in range(70)]
    try:  # more than nodes()'s first guess of 64
        assert sorted(a.nodes()) == sorted(["a", "b"] + [f"n{i}" for i in range(70)])
    finally:
        for n in many:
            n.close()


def test_stats(pair):
    a, b = pair
    st = a.stats()
    assert list(st) == ["msgs_sent", "msgs_recv", "bytes_sent", "bytes_recv", "send_full",
                        "wakes_sent", "wakes_skipped", "sleeps", "spins", "connects",
                        "rings_in", "rings_out", "calls", "calls_in_flight", "calls_timeout",
                        "calls_pipe", "calls_remote", "calls_cancelled", "calls_refused",
                        "calls_late", "calls_served", "calls_expired", "calls_rejected",
                        "replies_sent", "replies_failed"]
    a.send("b", b"1234")
    b.recv(1)
    sa, sb = a.stats(), b.stats()
    assert sa["msgs_sent"] == st["msgs_sent"] + 1 and sa["bytes_sent"] == 4
    assert sa["connects"] == 1 and sa["rings_out"] == 1
    assert sb["msgs_recv"] == 1 and sb["bytes_recv"] == 4 and sb["rings_in"] == 1


def test_wait_node(domain):
    with shmrpc.Node("a", domain=domain) as a:
        with pytest.raises(BlockingIOError):
            a.wait_node("late", timeout=0)
        def join():
            time.sleep(0.3)
            with shmrpc.Node("late", domain=domain):
                time.sleep(0.5)
        t = threading.Thread(target=join)
        t.start()
        a.wait_node("late", timeout=10)
        assert a.is_local("late")
        t.join()


def test_dispatch(pair):
    a, b = pair
    for i in range(5):
        a.send("b", b"m%d" % i)
    got = []
    assert b.dispatch(lambda data, sender: got.append((data, sender)), timeout=1) == 5
    assert got == [(b"m%d" % i, "a") for i in range(5)]
    with pytest.raises(BlockingIOError):
        b.dispatch(got.append, timeout=0)


def test_dispatch_exception_loses_no_message(pair):
    a, b = pair
    for i in range(4):
        a.send("b", b"%d" % i)
    seen = []

    def fn(data, sender):
        seen.append(data)
        if data in (b"1", b"2"):
            raise KeyError(data)

    with pytest.raises(KeyError) as e:
        b.dispatch(fn, timeout=1)
    assert e.value.args == (b"1",)  # the first one
    assert any("1 more" in n for n in e.value.__notes__)
    assert seen == [b"0", b"1", b"2", b"3"]  # every message taken was handed over
    with pytest.raises(BlockingIOError):
        b.recv(0)


def test_handler_may_send_but_not_receive_or_close(pair):
    a, b = pair
    a.send("b", b"ping")
    errs = []

    def fn(data, sender):
        b.send(sender, b"pong")
        for call in (lambda: b.recv(0), lambda: b.close()):
            try:
                call()
            except (OSError, RuntimeError) as e:
                errs.append(e)

    assert b.dispatch(fn, timeout=1) == 1
    assert a.recv(1) == (b"pong", "b")
    assert [type(e) for e in errs] == [type(errs[0]), RuntimeError]
    assert errs[0].errno == errno.EBUSY
    assert not b.closed


def test_start_stop(pair):
    a, b = pair
    got = []
    done = threading.Event()

    def fn(data, sender):
        got.append((data, sender))
        if len(got) == 3:
            done.set()

    b.start(fn)
    with pytest.raises(OSError) as e:
        b.recv(0)  # the library's thread receives now
    assert e.value.errno == errno.EBUSY
    with pytest.raises(OSError) as e:
        b.start(fn)
    assert e.value.errno == errno.EALREADY
    for i in range(3):
        a.send("b", b"%d" % i)
    assert done.wait(10)
    b.stop()
    assert got == [(b"0", "a"), (b"1", "a"), (b"2", "a")]
    with pytest.raises(OSError) as e:
        b.stop()
    assert e.value.errno == errno.EALREADY
    a.send("b", b"after")
    assert b.recv(1) == (b"after", "a")


def test_start_handler_errors(pair, capsys):
    a, b = pair
    seen = threading.Event()
    errs = []

    def fn(data, sender):
        if data == b"stop":
            try:
                b.stop()
            except OSError as e:
                errs.append(e.errno)
            try:
                b.close()
            except RuntimeError:
                errs.append("close refused")
            seen.set()
            return
        raise ZeroDivisionError("in the handler")

    b.start(fn)
    a.send("b", b"boom")
    a.send("b", b"stop")
    assert seen.wait(10)
    assert errs == [errno.EDEADLK, "close refused"]
    with pytest.raises(ZeroDivisionError):
        b.stop()
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_close_with_start_running(domain):
    with shmrpc.Node("a", domain=domain) as a:
        b = shmrpc.Node("b", domain=domain)
        got = threading.Event()
        b.start(lambda d, s: got.set())
        a.send("b", b"x")
        assert got.wait(10)
        b.close()  # stops the thread first
        assert b.closed


def test_close_waits_for_a_blocked_call(pair):
    a, b = pair
    errs = []

    def receiver():
        try:
            b.recv()  # forever
        except shmrpc.NodeClosed as e:
            errs.append(e)

    t = threading.Thread(target=receiver)
    t.start()
    wait_for(lambda: b._life.users, what="receiver in recv")
    start = time.monotonic()
    b.close()
    t.join(10)
    assert not t.is_alive() and len(errs) == 1
    assert time.monotonic() - start < 5  # a slice (0.25 s), with slack for a loaded machine


def test_threads_send_at_once(pair):
    a, b = pair
    n, per = 4, 500

    def sender(k):
        for i in range(per):
            a.send("b", b"%d:%d" % (k, i), timeout=10)

    ts = [threading.Thread(target=sender, args=(k,)) for k in range(n)]
    for t in ts:
        t.start()
    got = [b.recv(10)[0] for _ in range(n * per)]
    for t in ts:
        t.join()
    for k in range(n):  # each thread's messages in its order
        mine = [g for g in got if g.startswith(b"%d:" % k)]
        assert mine == [b"%d:%d" % (k, i) for i in range(per)]


def test_module_functions():
    assert shmrpc.backend_default() in ("uring", "futex")
    assert shmrpc.backend_available("futex") in (True, False)
    assert shmrpc.backend_available(shmrpc.backend_default())
    with pytest.raises(ValueError):
        shmrpc.backend_available("URING")
    assert shmrpc.NAME_MAX == 63 and shmrpc.VERSION == (0, 3)
    assert shmrpc.LIBRARY == os.environ["SHMRPC_LIBRARY"]
    assert isinstance(shmrpc.last_error(), str)




def test_exit_with_a_daemon_thread_in_recv(domain):
    """At interpreter exit the node is closed while a daemon thread still
    waits in recv(): the close waits for that call to notice (within a
    slice) instead of freeing the node under it."""
    code = textwrap.dedent("""
        import atexit, sys, threading, shmrpc
        # runs after the node's finalizer (atexit runs last registered first)
        atexit.register(lambda: print("calls running at close:", len(n._life.users)))
        n = shmrpc.Node("a", domain=sys.argv[1])
        threading.Thread(target=n.recv, daemon=True).start()
        while not n._life.users:
            pass
        print("exiting", flush=True)
    """)
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", code, domain], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert r.stdout == "exiting\ncalls running at close: 0\n", r.stdout
    assert not shm_files(domain)
