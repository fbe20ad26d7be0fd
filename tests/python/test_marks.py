# SPDX-License-Identifier: MIT
"""Node.close(dead=True) (shmrpc_close_flags, SHMRPC_CLOSE_DEAD) and
broadcast marks (Node(bcast_marks=True), Node.recv_batch_marks), with the
nodes closing, sending and receiving in other processes."""
import ast
import textwrap

import pytest

import shmrpc
from conftest import py_argv

# A peer that joins as argv[2], says ready, closes as told by one line on
# stdin ("dead" or "leave": close(dead=True) or close(), then the other
# kind and a plain close again, which must do nothing), says closed, and
# stays alive until stdin ends: a DEATH is then the flag's, not the exit's.
CLOSER = textwrap.dedent("""
    import sys, shmrpc
    n = shmrpc.Node(sys.argv[2], domain=sys.argv[1])
    print("ready", flush=True)
    dead = sys.stdin.readline().strip() == "dead"
    n.close(dead=dead)
    n.close(dead=not dead)
    n.close()
    print("closed", n.closed, flush=True)
    sys.stdin.read()
""")


def event(node):
    data, sender = node.recv(timeout=10)
    assert sender == shmrpc.EVENT_FROM
    return shmrpc.Event.parse(data)


@pytest.mark.parametrize("how, kind", [("dead", "death"), ("leave", "leave")])
def test_close_dead_is_a_death_event(domain, spawn, how, kind):
    with shmrpc.Node("r", domain=domain, events=True) as r:
        peer = spawn(py_argv(CLOSER, domain, "x"))
        j = event(r)
        assert (j.kind, j.name, j.pid) == ("join", "x", peer.p.pid)
        peer.p.stdin.write(how + "\n")
        peer.p.stdin.flush()
        assert peer.p.stdout.readline() == "closed True\n"
        e = event(r)
        assert (e.kind, e.name, e.id, e.pid) == (kind, "x", j.id, peer.p.pid)
        assert peer.p.poll() is None  # still alive: the event is the close's
        with pytest.raises(BlockingIOError):  # the later closes did nothing
            r.recv(timeout=0)
        assert "x" not in r.nodes()
        peer.p.stdin.close()
        assert peer.wait() == 0


# A sender that joins as "s", waits for argv[2:], then runs commands, one a
# line: "send TO DATA", "bcast DATA", "big N" (a broadcast of N bytes
# b"L"); each answered "ok RESULT" (broadcast: how many nodes got it).
SENDER = textwrap.dedent("""
    import sys, shmrpc
    with shmrpc.Node("s", domain=sys.argv[1]) as n:
        for name in sys.argv[2:]:
            n.wait_node(name, timeout=10)
        print("ready", flush=True)
        for line in sys.stdin:
            cmd, *args = line.split()
            if cmd == "send":
                rc = n.send(args[0], args[1].encode(), timeout=10)
            elif cmd == "bcast":
                rc = n.broadcast(args[0].encode(), timeout=10)
            else:
                rc = n.broadcast(b"L" * int(args[0]), timeout=10)
            print("ok", rc, flush=True)
""")

# A marked node "m2" in a process of its own: prints each batch of
# recv_batch_marks (repr), until a message b"quit".
MARKED = textwrap.dedent("""
    import sys, shmrpc
    with shmrpc.Node("m2", domain=sys.argv[1], bcast_marks=True) as n:
        print("ready", flush=True)
        while True:
            got = n.recv_batch_marks(timeout=30)
            print(repr(got), flush=True)
            if any(g[0] == b"quit" for g in got):
                break
""")


def command(sender, line):
    sender.p.stdin.write(line + "\n")
    sender.p.stdin.flush()
    out = sender.p.stdout.readline().split()
    assert out[:1] == ["ok"], f"{line}: {out}"
    return out[1]


def test_bcast_marks(domain, spawn):
    m2 = spawn(py_argv(MARKED, domain))
    with shmrpc.Node("m1", domain=domain, bcast_marks=True) as m1, \
            shmrpc.Node("p", domain=domain) as p:
        s = spawn(py_argv(SENDER, domain, "m1", "m2", "p"))
        command(s, "send m1 one")
        assert command(s, "bcast b1") == "3"  # m1, m2, p
        command(s, "send m1 two")
        # The marked copy ends the batch: the message after it waits.
        first = m1.recv_batch_marks(8, timeout=10)
        assert [f[:2] for f in first] == [(b"one", "s"), (b"b1", "s")]
        assert first[0][2:] == (0, 0)  # an ordinary send: no mark
        b1, copies = first[1][2:]
        assert b1 != 0 and copies == 2  # the two nodes opened with bcast_marks
        assert m1.recv_batch_marks(8, timeout=10) == [(b"two", "s", 0, 0)]
        # The other marked node got the same broadcast, with the same mark.
        assert ast.literal_eval(m2.p.stdout.readline()) == [(b"b1", "s", b1, 2)]
        # A node without marks gets the broadcast as a plain message.
        assert p.recv(timeout=10) == (b"b1", "s")

        # Larger than the batch's buffers: alone, with its mark; then the next.
        assert command(s, "big 5000") == "3"
        command(s, "send m1 three")
        (big,) = m1.recv_batch_marks(8, timeout=10, size=100)
        assert big[:2] == (b"L" * 5000, "s")
        assert big[2] > b1 and big[3] == 2  # the sender's next broadcast
        assert m1.recv_batch_marks(8, timeout=10, size=100) == [(b"three", "s", 0, 0)]
        assert ast.literal_eval(m2.p.stdout.readline()) == [(b"L" * 5000, "s", big[2], 2)]
        # Marks on a node without them: all 0, the broadcast ends no batch.
        assert p.recv_batch_marks(8, timeout=10, size=100) == [(b"L" * 5000, "s", 0, 0)]
        assert command(s, "bcast b3") == "3"
        command(s, "send p four")
        got = []
        while len(got) < 2:
            got += p.recv_batch_marks(8, timeout=10)
        assert got == [(b"b3", "s", 0, 0), (b"four", "s", 0, 0)]

        m1.send("m2", b"quit")
        rest = []  # b3 and quit, from two rings: in either order
        while (b"quit", "m1", 0, 0) not in rest:
            rest += ast.literal_eval(m2.p.stdout.readline())
        assert len(rest) == 2 and [r[:2] for r in rest].count((b"b3", "s")) == 1
        b3 = next(r for r in rest if r[1] == "s")
        assert b3[2] > big[2] and b3[3] == 2
        assert m2.wait() == 0
        assert m1.recv_batch_marks(timeout=10) == [(b"b3", "s", b3[2], 2)]
        s.p.stdin.close()  # the sender leaves
        assert s.wait() == 0
        for bad in (0, -1, True, 1.5):
            with pytest.raises(ValueError):
                m1.recv_batch_marks(bad)
        with pytest.raises(BlockingIOError):
            m1.recv_batch_marks(timeout=0)
