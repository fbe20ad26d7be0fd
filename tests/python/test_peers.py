# SPDX-License-Identifier: MIT
"""Python talking to other processes: a C peer (tests/echo_peer.c), another
Python process, and peers SIGKILLed."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import shmrpc
from conftest import echo_peer_argv, py_argv, shm_files, wait_for


def test_python_and_c_round_trips(domain, spawn):
    peer = spawn(echo_peer_argv(domain, "cpeer"))
    with shmrpc.Node("py", domain=domain) as n:
        n.wait_node("cpeer", timeout=10)
        for size in (0, 1, 64, 4095, 4096, 100000, 131064):
            msg = os.urandom(size)
            n.send("cpeer", msg, timeout=10)
            assert n.recv(timeout=10) == (msg, "cpeer")
        with n.reserve("cpeer", 32, timeout=10) as buf:  # zero-copy both ways
            buf[:11] = b"zero-copy ?"
            buf.length = 11
        with n.peek(timeout=10) as (view, sender):
            assert view == b"zero-copy ?" and sender == "cpeer"
        n.send("cpeer", b"nodes")
        assert sorted(n.recv(10)[0].decode().split(",")) == ["cpeer", "py"]
        n.send("cpeer", b"quit")
        assert peer.wait() == 0
        wait_for(lambda: not n.is_local("cpeer"), what="the C peer gone")


def test_python_and_c_stream(domain, spawn):
    """Many messages each way through a small ring, so both sides block on
    full rings and wake each other."""
    peer = spawn(echo_peer_argv(domain, "cpeer", 4096))
    with shmrpc.Node("py", domain=domain, ring_bytes=4096) as n:
        n.wait_node("cpeer", timeout=10)
        count = 3000
        got = []
        reader = threading.Thread(target=lambda: got.extend(n.recv(10)[0]
                                                            for _ in range(count)))
        reader.start()
        for i in range(count):
            n.send("cpeer", b"%06d" % i + b"." * (i % 200), timeout=10)
        reader.join(60)
        assert [g[:6] for g in got] == [b"%06d" % i for i in range(count)]
        n.send("cpeer", b"quit")
        assert peer.wait() == 0


ECHO_PY = textwrap.dedent("""
    import sys, shmrpc
    with shmrpc.Node(sys.argv[2], domain=sys.argv[1]) as n:
        print("ready", flush=True)
        done = []
        def echo(data, sender):
            if data == b"quit":
                done.append(1)
            else:
                n.send(sender, data[::-1], timeout=10)
        while not done:
            n.dispatch(echo, timeout=30)
""")


def test_two_python_processes(domain, spawn):
    peer = spawn(py_argv(ECHO_PY, domain, "pyecho"))
    with shmrpc.Node("main", domain=domain) as n:
        n.wait_node("pyecho", timeout=10)
        for i in range(500):
            msg = b"%d-" % i * (i % 50)
            n.send("pyecho", msg, timeout=10)
            assert n.recv(10) == (msg[::-1], "pyecho")
        n.send("pyecho", b"quit")
        assert peer.wait() == 0


SILENT_PY = textwrap.dedent("""
    import sys, time, shmrpc
    n = shmrpc.Node(sys.argv[2], domain=sys.argv[1], ring_bytes=4096)
    count = int(sys.argv[3])
    if count:
        n.wait_node("main", timeout=10)
        for i in range(count):
            n.send("main", b"%d" % i, timeout=10)
    print("ready", flush=True)
    time.sleep(120)  # never receives: killed by the test
""")


def test_blocked_send_to_a_killed_peer_is_broken_pipe(domain, spawn):
    peer = spawn(py_argv(SILENT_PY, domain, "victim", 0))
    with shmrpc.Node("main", domain=domain) as n:
        sent = 0
        while True:  # fill its ring
            try:
                n.send("victim", b"x" * 100, timeout=0)
                sent += 1
            except BlockingIOError:
                break
        assert sent > 10
        err = []

        def blocked():
            start = time.monotonic()
            try:
                n.send("victim", b"x" * 100, timeout=30)
            except BrokenPipeError as e:
                err.append((e, time.monotonic() - start))

        t = threading.Thread(target=blocked)
        t.start()
        wait_for(lambda: n.stats()["send_full"] > 1, what="the send blocked on a full ring")
        killed = time.monotonic()
        os.kill(peer.p.pid, signal.SIGKILL)
        t.join(30)
        assert err, "the blocked send did not end with BrokenPipeError"
        assert time.monotonic() - killed < 10  # told by the kernel, not by the 30 s timeout
        with pytest.raises(BrokenPipeError):
            n.send("victim", b"after", timeout=0)
        wait_for(lambda: "victim" not in n.nodes(), what="the killed node reclaimed")


def test_messages_of_a_killed_sender_are_drained(domain, spawn):
    with shmrpc.Node("main", domain=domain) as n:
        peer = spawn(py_argv(SILENT_PY, domain, "sender", 30))
        os.kill(peer.p.pid, signal.SIGKILL)
        peer.p.wait()
        got = [n.recv(timeout=10)[0] for _ in range(30)]
        assert got == [b"%d" % i for i in range(30)]
        with pytest.raises(BlockingIOError):
            n.recv(0)
        wait_for(lambda: not n.is_local("sender"), what="the killed sender reclaimed")


def test_killed_c_peer(domain, spawn):
    peer = spawn(echo_peer_argv(domain, "cpeer"))
    with shmrpc.Node("py", domain=domain) as n:
        n.send("cpeer", b"hello", timeout=10)
        assert n.recv(10) == (b"hello", "cpeer")
        peer.kill()
        wait_for(lambda: not n.is_local("cpeer"), what="the killed C peer reclaimed")
        with pytest.raises(BrokenPipeError):
            n.send("cpeer", b"to the dead")


def alive(pid):
    """Any thread of pid not yet a zombie. (A process's main thread can be
    a zombie while its other threads still exit, holding its files: and so
    its node's liveness lock.)"""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:  # gone: ENOENT, or ESRCH while it goes
        return False
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    return True
        except OSError:  # that thread is gone (ENOENT, or ESRCH on the read)
            pass
    return False


def test_peers_die_with_the_test(domain):
    """A test killed midway leaves no peer behind (PR_SET_PDEATHSIG): a
    middle process starts a C and a Python peer, and is SIGKILLed."""
    middle = textwrap.dedent("""
        import subprocess, sys, time
        sys.path.insert(0, sys.argv[2])
        from conftest import echo_peer_argv, py_argv
        silent = "import sys, time, shmrpc\\n" \\
                 "n = shmrpc.Node('silent', domain=sys.argv[1])\\n" \\
                 "print('ready', flush=True)\\ntime.sleep(120)\\n"
        ps = [subprocess.Popen(echo_peer_argv(sys.argv[1], "cpeer"), stdout=subprocess.PIPE),
              subprocess.Popen(py_argv(silent, sys.argv[1]), stdout=subprocess.PIPE)]
        for p in ps:
            p.stdout.readline()
        print(" ".join(str(p.pid) for p in ps), flush=True)
        time.sleep(120)
    """)
    here = os.path.dirname(os.path.abspath(__file__))
    m = subprocess.Popen([sys.executable, "-c", middle, domain, here], stdout=subprocess.PIPE,
                         text=True)
    try:
        pids = [int(p) for p in m.stdout.readline().split()]
        assert len(pids) == 2
        os.kill(m.pid, signal.SIGKILL)
        m.wait()
        wait_for(lambda: not any(map(alive, pids)), what="the peers gone")
        # Nobody was left to clean up after them: a join reclaims the dead,
        # and the last one out removes the domain. (Again if a dead peer's
        # files were still held when it looked gone from here.)
        def swept():
            shmrpc.Node("sweeper", domain=domain).close()
            return not shm_files(domain)
        wait_for(swept, what="the domain removed by the last one out")
    finally:
        m.kill()
        m.wait()
        m.stdout.close()
