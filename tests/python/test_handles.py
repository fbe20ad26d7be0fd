# SPDX-License-Identifier: MIT
"""Node.peer (shmrpc.Peer), membership events (Node(events=...),
shmrpc.Event) and Node.recv_batch."""
import errno
import os
import signal
import textwrap

import pytest

import shmrpc
from conftest import py_argv, wait_for

# A Python peer: joins as argv[2], says ready, then echoes to "r" until "quit".
ECHO = textwrap.dedent("""
    import sys, shmrpc
    with shmrpc.Node(sys.argv[2], domain=sys.argv[1]) as n:
        print("ready", flush=True)
        while True:
            data, sender = n.recv()
            if data == b"quit":
                break
            n.send(sender, data)
""")


def events(node, count, timeout=10):
    """The next `count` messages of node, all events: [Event]."""
    out = []
    for _ in range(count):
        data, sender = node.recv(timeout=timeout)
        assert sender == shmrpc.EVENT_FROM
        out.append(shmrpc.Event.parse(data))
    return out


def test_events_join_leave_death(domain, spawn):
    with shmrpc.Node("r", domain=domain, events=True) as r:
        with shmrpc.Node("x", domain=domain):
            pass
        (j, l) = events(r, 2)
        assert (j.kind, j.name, j.pid, j.dropped) == ("join", "x", os.getpid(), 0)
        assert (l.type, l.name, l.id) == (shmrpc.EV_LEAVE, "x", j.id)
        peer = spawn(py_argv(ECHO, domain, "victim"))
        (j,) = events(r, 1)
        assert (j.kind, j.name, j.pid) == ("join", "victim", peer.p.pid)
        os.kill(peer.p.pid, signal.SIGKILL)
        peer.p.wait()
        r.is_local("victim")  # the lazy check, if no watcher came first
        (d,) = events(r, 1)
        assert (d.kind, d.name, d.id) == ("death", "victim", j.id)
        with pytest.raises(BlockingIOError):
            r.recv(timeout=0)


def test_events_mask_and_options(domain):
    with shmrpc.Node("r", domain=domain, events=shmrpc.EV_LEAVE) as r:
        with shmrpc.Node("x", domain=domain):
            pass
        (l,) = events(r, 1)
        assert l.kind == "leave"
        with pytest.raises(BlockingIOError):
            r.recv(timeout=0)
    with shmrpc.Node("q", domain=domain) as q:  # none by default
        with shmrpc.Node("x", domain=domain):
            pass
        with pytest.raises(BlockingIOError):
            q.recv(timeout=0)
    for bad in (8, -1, "all"):
        with pytest.raises((ValueError, TypeError)):
            shmrpc.Node("z", domain=domain, events=bad)
    with pytest.raises(ValueError):
        shmrpc.Event.parse(b"short")


def test_peer_send_sendv_and_restart(domain, spawn):
    with shmrpc.Node("r", domain=domain) as r:
        peer = spawn(py_argv(ECHO, domain, "x"))
        with r.peer("x", timeout=10) as p:
            assert (p.name, p.alive) == ("x", True)
            p.send(b"one")
            assert r.recv(timeout=10) == (b"one", "x")
            assert p.sendv([b"a", b"bb", bytearray(b"ccc"), memoryview(b"")]) == 4
            got = []
            while len(got) < 4:
                got += r.recv_batch(8, timeout=10)
            assert got == [(b"a", "x"), (b"bb", "x"), (b"ccc", "x"), (b"", "x")]
            p.send(b"quit")
            assert peer.wait() == 0
            wait_for(lambda: not p.alive, what="the handle told its node left")
            peer2 = spawn(py_argv(ECHO, domain, "x"))
            with pytest.raises(BrokenPipeError):  # not to the new "x"
                p.send(b"to the old one")
            with pytest.raises(BrokenPipeError):
                p.sendv([b"a"])
            with r.peer("x", timeout=10) as p2:  # the new one
                p2.send(b"again")
                assert r.recv(timeout=10) == (b"again", "x")
                p2.send(b"quit")
            assert peer2.wait() == 0
        with pytest.raises(ValueError):
            p.send(b"closed handle")
        assert not p.alive
        with pytest.raises(TimeoutError):
            r.peer("nobody", timeout=0.05)
        with pytest.raises(shmrpc.Error) as e:
            r.peer("r")  # itself
        assert e.value.errno == errno.EINVAL


def test_peer_outlives_its_node(domain):
    r = shmrpc.Node("r", domain=domain)
    with shmrpc.Node("x", domain=domain):
        p = r.peer("x")
        r.close()
        with pytest.raises(shmrpc.NodeClosed):
            p.send(b"x")
        p.close()  # after the node: fine
    r2 = shmrpc.Node("r", domain=domain)
    x2 = shmrpc.Node("x", domain=domain)
    q = r2.peer("x")
    del q  # collected: put by its finalizer
    r2.close()
    x2.close()


def test_recv_batch_sizes(pair):
    a, b = pair
    with a.peer("b") as p:
        assert p.sendv([b"1" * 10, b"2" * 5000, b"3"]) == 3
    assert b.recv_batch(8, timeout=5, size=100) == [(b"1" * 10, "a")]  # ends before the large one
    assert b.recv_batch(8, timeout=5, size=100) == [(b"2" * 5000, "a")]  # alone, copied
    assert b.recv_batch(8, timeout=5, size=100) == [(b"3", "a")]
    with pytest.raises(BlockingIOError):
        b.recv_batch(timeout=0)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            b.recv_batch(bad)


def test_events_through_recv_batch_and_fileno(domain):
    import selectors

    with shmrpc.Node("r", domain=domain, events=shmrpc.EV_ALL) as r:
        sel = selectors.DefaultSelector()
        sel.register(r.fileno(), selectors.EVENT_READ)
        with shmrpc.Node("x", domain=domain) as x:
            x.send("r", b"hi")
        assert sel.select(timeout=10)
        got = []
        while len(got) < 3:
            got += r.recv_batch(8, timeout=10, size=shmrpc._peer._EVENT_SIZE)
        kinds = [shmrpc.Event.parse(d).kind if s == shmrpc.EVENT_FROM else d for d, s in got]
        assert kinds == ["join", b"hi", "leave"]
        sel.close()


def test_event_from_matches_the_header():
    import re

    from conftest import ROOT

    with open(os.path.join(ROOT, "include", "shmrpc.h")) as f:
        m = re.search(r'#define SHMRPC_EVENT_FROM "([^"]*)"', f.read())
    assert m and m.group(1) == shmrpc.EVENT_FROM
    assert shmrpc.EV_LOG == 256 and shmrpc.EV_ALL == 7
