# SPDX-License-Identifier: MIT
"""fileno() in event loops: selectors and asyncio's add_reader, with the
messages coming from another process."""
import asyncio
import os
import selectors
import textwrap

import shmrpc
from conftest import py_argv

# A sender process: waits for "listener", sends COUNT messages spaced out
# (so the listener sleeps between them), then "end".
SENDER = textwrap.dedent("""
    import sys, time, shmrpc
    domain, count = sys.argv[1], int(sys.argv[2])
    with shmrpc.Node("sender", domain=domain) as n:
        print("ready", flush=True)
        n.wait_node("listener", timeout=20)
        for i in range(count):
            n.send("listener", b"msg %d" % i, timeout=20)
            time.sleep(0.02)
        n.send("listener", b"end", timeout=20)
        sys.stdin.readline()  # stay until the listener is done
""")


def test_fileno_is_stable(pair):
    a, b = pair
    fd = b.fileno()
    assert fd >= 0 and b.fileno() == fd
    os.fstat(fd)  # a real descriptor


def test_selectors_loop(domain, spawn):
    peer = spawn(py_argv(SENDER, domain, 20))
    got = []
    with shmrpc.Node("listener", domain=domain) as n, selectors.DefaultSelector() as sel:
        sel.register(n.fileno(), selectors.EVENT_READ)
        wakeups = 0
        while not got or got[-1] != b"end":
            events = sel.select(timeout=20)
            assert events, "the descriptor never became readable"
            wakeups += 1
            while True:  # recv(0) until BlockingIOError, as documented
                try:
                    got.append(n.recv(0)[0])
                except BlockingIOError:
                    break
        assert got == [b"msg %d" % i for i in range(20)] + [b"end"]
        assert wakeups >= 2  # it slept between messages, and woke for them
        peer.p.stdin.write("done\n")
        peer.p.stdin.flush()
        assert peer.wait() == 0


def test_asyncio_add_reader(domain, spawn):
    peer = spawn(py_argv(SENDER, domain, 20))
    got = []

    async def main():
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        with shmrpc.Node("listener", domain=domain) as n:
            def ready():
                def handle(data, sender):
                    assert sender == "sender"
                    got.append(data)
                    if data == b"end" and not finished.done():
                        finished.set_result(None)
                try:
                    n.dispatch(handle, timeout=0)
                except BlockingIOError:
                    pass  # readable can be spurious

            loop.add_reader(n.fileno(), ready)
            try:
                ticks = 0
                while not finished.done():  # the loop stays free meanwhile
                    await asyncio.wait([finished], timeout=0.01)
                    ticks += 1
                    assert ticks < 2000, "no end within 20 s"
            finally:
                loop.remove_reader(n.fileno())
        return ticks

    ticks = asyncio.run(main())
    assert got == [b"msg %d" % i for i in range(20)] + [b"end"]
    assert ticks > 5  # the loop ran other work while messages came
    peer.p.stdin.write("done\n")
    peer.p.stdin.flush()
    assert peer.wait() == 0
