# SPDX-License-Identifier: MIT
"""Request/response through the binding: Node.call, call_stream, serve,
Peer.call; a Python server in another process, the C key-value service
(tools/shmrpc-kv), streams and their cancel, timeouts, deferred replies, a
server killed mid-call, a serve function that raises."""
import errno
import os
import subprocess
import threading

import pytest

import shmrpc
from conftest import BUILD, py_argv, wait_for

KV = os.path.join(BUILD, "tools", "shmrpc-kv")

# A Python server: echo reversed; "err" -> ENOENT; "boom" raises; "stream N"
# streams N replies; "hang" is never answered (it says "got" on stdout);
# "later N" answers from another thread, the N-th request first.
SERVER = r"""
import errno, sys, threading, shmrpc
node = shmrpc.Node("srv", domain=sys.argv[1])
held = []

def fn(req):
    d = req.data
    if d == b"err":
        req.reply_error(errno.ENOENT)
    elif d == b"boom":
        raise RuntimeError("boom")
    elif d.startswith(b"stream "):
        for i in range(int(d[7:])):
            req.reply(b"%d" % i, more=True)
        req.reply(b"end")
    elif d == b"hang":
        req.defer()
        print("got", flush=True)
    elif d.startswith(b"later "):
        held.append(req.defer())
        if len(held) == int(d[6:]):
            def answer():
                for r in reversed(held):
                    r.reply(r.data)
            threading.Thread(target=answer).start()
    else:
        return d[::-1]

node.serve(fn)
print("ready", flush=True)
while True:
    try:
        if node.recv(timeout=1.0)[0] == b"quit":
            break
    except TimeoutError:
        pass
node.close()
"""


@pytest.fixture
def server(domain, spawn):
    s = spawn(py_argv(SERVER, domain))
    yield s
    if s.p.poll() is None:  # leave cleanly: nothing of it stays in /dev/shm
        with shmrpc.Node("quitter", domain=domain) as n:
            n.send("srv", b"quit")
        s.wait()


def test_call_python_server(domain, server):
    with shmrpc.Node("cli", domain=domain) as n:
        assert n.call("srv", b"hello", timeout=10) == b"olleh"
        assert n.call("srv", bytearray(b""), timeout=10) == b""
        big = os.urandom(60000)
        assert n.call("srv", memoryview(big)) == big[::-1]
        with pytest.raises(FileNotFoundError) as e:
            n.call("srv", b"err", timeout=10)
        assert isinstance(e.value, shmrpc.Error) and e.value.errno == errno.ENOENT
        with pytest.raises(shmrpc.Error) as e:
            n.call("srv", b"boom", timeout=10)  # the server lives on
        assert e.value.errno == errno.EIO
        assert n.call("srv", b"still", timeout=10) == b"llits"
        with n.peer("srv") as p:
            assert p.call(b"peer") == b"reep"
            assert list(p.call_stream(b"stream 2", timeout=10)) == [b"0", b"1", b"end"]
        st = n.stats()
        assert st["calls"] >= 7


def test_stream(domain, server):
    with shmrpc.Node("cli", domain=domain) as n:
        got = list(n.call_stream("srv", b"stream 100", timeout=10))
        assert got == [b"%d" % i for i in range(100)] + [b"end"]
        # call() takes the first reply and cancels the rest
        assert n.call("srv", b"stream 5", timeout=10) == b"0"
        assert n.call("srv", b"x", timeout=10) == b"x"


def test_deferred_reverse_order(domain, server):
    """Five calls in flight from five threads, answered from another thread
    of the server in reverse order: each gets its own reply."""
    with shmrpc.Node("cli", domain=domain) as n:
        out, errs = {}, []

        def one(i):
            try:
                out[i] = n.call("srv", b"later 5", timeout=20)
            except Exception as e:  # noqa: BLE001 (reported below)
                errs.append(e)

        ts = [threading.Thread(target=one, args=(i,)) for i in range(5)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errs and list(out.values()) == [b"later 5"] * 5


def test_timeout(domain, server):
    with shmrpc.Node("cli", domain=domain) as n:
        with pytest.raises(TimeoutError):
            n.call("srv", b"hang", timeout=0.2)
        assert server.p.stdout.readline() == "got\n"
        with pytest.raises(BlockingIOError):
            n.call("srv", b"hang", timeout=0)
        with pytest.raises(TimeoutError):
            next(n.call_stream("srv", b"hang", timeout=0.1))
        assert n.stats()["calls_in_flight"] == 0


def test_server_killed(domain, server):
    """A call pending on a server SIGKILLed raises BrokenPipeError, not a
    timeout (the timeout is far off)."""
    with shmrpc.Node("cli", domain=domain) as n:
        def kill():
            assert server.p.stdout.readline() == "got\n"
            server.kill()

        t = threading.Thread(target=kill)
        t.start()
        with pytest.raises(BrokenPipeError):
            n.call("srv", b"hang", timeout=60)
        t.join()
        with pytest.raises(FileNotFoundError):
            n.call("srv", b"x", timeout=0)


def test_in_process_serve_cancel(pair):
    """A stream cancelled by closing the generator: the server sees
    cancelled() and stops. Served by start()'s thread."""
    a, b = pair
    stopped = threading.Event()

    def fn(req):
        i = 0
        while not req.cancelled():
            req.reply(b"%d" % i, more=True)
            i += 1
        stopped.set()
        req.reply_error(errno.ECANCELED)  # the end, which the caller no longer takes
    b.serve(fn)
    b.start(lambda data, sender: None)
    try:
        gen = a.call_stream("b", b"go", timeout=20)
        assert [next(gen) for _ in range(10)] == [b"%d" % i for i in range(10)]
        gen.close()
        assert stopped.wait(20)
        assert a.stats()["calls_in_flight"] == 0
    finally:
        b.stop()


def test_serve_errors_kept(pair):
    a, b = pair
    b.serve(lambda req: 1 / 0)
    b.start(lambda data, sender: None)
    try:
        with pytest.raises(shmrpc.Error) as e:
            a.call("b", b"x", timeout=10)
        assert e.value.errno == errno.EIO
        assert isinstance(b.serve_errors[-1], ZeroDivisionError)
        b.serve(lambda req: None)  # returns without replying: EIO too
        with pytest.raises(shmrpc.Error) as e:
            a.call("b", b"x", timeout=10)
        assert e.value.errno == errno.EIO
        b.serve(lambda req: req.reply(req.sender.encode()))
        assert a.call("b", b"x", timeout=10) == b"a"
        b.serve(None)
        with pytest.raises(shmrpc.Error) as e:
            a.call("b", b"x", timeout=10)
        assert e.value.errno == errno.EOPNOTSUPP
    finally:
        b.stop()


def test_reply_nowait(pair):
    """nowait=True: a full reply ring raises BlockingIOError at once and the
    request stays open; once the caller reads, the reply goes."""
    a, b = pair
    held, got = [], threading.Event()

    def fn(req):
        held.append(req.defer())
        got.set()
    b.serve(fn)
    b.start(lambda data, sender: None)
    try:
        gen = a.call_stream("b", b"x", timeout=20)
        first = threading.Thread(target=lambda: held.append(next(gen)))
        first.start()
        assert got.wait(10)
        req = held[0]
        req.reply(b"0", more=True, nowait=True)
        first.join(10)
        assert held[1] == b"0"
        k = 0  # nobody reads now: the caller's reply ring fills
        with pytest.raises(BlockingIOError):
            for k in range(1, 100000):
                req.reply(b"%d" % k + b"." * 1000, more=True, nowait=True)
        assert k > 1 and not req.ended and not req.cancelled()
        assert next(gen).startswith(b"1.")  # reads what came: room again
        req.reply(b"end", nowait=True)
        rest = list(gen)
        assert len(rest) == k - 1 and rest[-1] == b"end" and req.ended
    finally:
        b.stop()


def test_request_fields_and_reply_after_end(pair):
    a, b = pair
    seen, done = [], threading.Event()

    def fn(req):
        seen.append(req)
        req.reply(b"one")
        with pytest.raises(FileNotFoundError):  # over: its last reply went
            req.reply(b"two")
        done.set()
    b.serve(fn)
    b.start(lambda data, sender: None)
    try:
        assert a.call("b", b"q", timeout=5) == b"one"
        assert done.wait(10)  # the call may return before fn does
        r = seen[0]
        assert r.data == b"q" and r.sender == "a" and r.ended
        assert r.deadline is not None and r.timeout() is not None
        assert r.cancelled()
        assert not b.serve_errors
    finally:
        b.stop()


def test_unknown_and_not_serving(pair):
    a, _b = pair
    with pytest.raises(FileNotFoundError):
        a.call("nobody", b"x", timeout=1)
    with pytest.raises(shmrpc.Error) as e:
        a.call("b", b"x", timeout=1)
    assert e.value.errno == errno.EOPNOTSUPP


def test_c_kv_server(domain):
    """tools/shmrpc-kv, the C service, called from Python."""
    if not os.access(KV, os.X_OK):
        pytest.fail(f"{KV} missing: make all builds it")
    p = subprocess.Popen([KV, "--domain", domain, "serve"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith("serving")
        with shmrpc.Node("pycli", domain=domain) as n:
            assert n.call("kv", b"set a 1", timeout=10) == b""
            assert n.call("kv", b"set b two", timeout=10) == b""
            assert n.call("kv", b"get b", timeout=10) == b"two"
            with pytest.raises(FileNotFoundError):
                n.call("kv", b"get zz", timeout=10)
            scan = list(n.call_stream("kv", b"scan", timeout=10))
            assert sorted(scan[:-1]) == [b"a=1", b"b=two"] and scan[-1] == b""  # the end
            assert n.call("kv", b"del a", timeout=10) == b""
            with pytest.raises(shmrpc.Error) as e:
                n.call("kv", b"nonsense", timeout=10)
            assert e.value.errno == errno.EINVAL
            p.kill()
            p.wait()
            wait_for(lambda: "kv" not in n.nodes(), what="kv gone")
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()
