# SPDX-License-Identifier: MIT
"""Timeouts in seconds, their conversion to the C timeout_ms, the slices
long waits are made of, Ctrl-C, and the GIL released while waiting."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from shmrpc import _node
from shmrpc._lib import INT_MAX, timeout_ms


@pytest.mark.parametrize("seconds, ms", [
    (None, -1), (0, 0), (0.0, 0), (0.0001, 1), (1e-9, 1), (0.001, 1), (0.0011, 2),
    (0.29, 290), (1, 1000), (2.5, 2500), (float("inf"), -1), (INT_MAX / 1000, INT_MAX),
    (1e300, INT_MAX), (10**30, INT_MAX), (2**31, INT_MAX)])
def test_timeout_ms(seconds, ms):
    assert timeout_ms(seconds) == ms


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (-0.5, ValueError),
                                      (float("nan"), ValueError), ("1", TypeError),
                                      (True, TypeError), ([], TypeError)])
def test_timeout_refused(bad, exc):
    with pytest.raises(exc):
        timeout_ms(bad)


def test_zero_never_blocks_and_short_waits_wait(pair):
    a, b = pair
    start = time.monotonic()
    with pytest.raises(BlockingIOError):
        b.recv(0)
    with pytest.raises(TimeoutError):
        b.recv(0.05)
    assert time.monotonic() - start >= 0.05


def test_long_wait_crosses_slices(pair):
    """A 0.8 s timeout is several slices: it ends with TimeoutError, not
    before 0.8 s, and a message arriving meanwhile ends it."""
    a, b = pair
    assert _node.SLICE_MS < 800
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        b.recv(0.8)
    assert time.monotonic() - start >= 0.8
    t = threading.Timer(0.6, lambda: a.send("b", b"late"))
    t.start()
    assert b.recv(10) == (b"late", "a")
    t.join()


def test_wait_forever_gets_the_message(pair):
    a, b = pair
    t = threading.Timer(0.6, lambda: a.send("b", b"eventually"))
    t.start()
    assert b.recv() == (b"eventually", "a")
    t.join()


def test_gil_released_while_waiting(pair):
    """While one thread waits in recv, this one runs Python: if the GIL were
    held for the wait, its sleep could not return before the recv did."""
    a, b = pair
    done = threading.Event()

    def waiter():
        with pytest.raises(TimeoutError):
            b.recv(timeout=3)
        done.set()

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.1)  # it is in recv now (or about to be)
    count, start = 0, time.monotonic()
    while time.monotonic() - start < 0.3:
        count += 1  # Python bytecode, needing the GIL
    assert not done.is_set(), "recv returned early"
    assert count > 1000
    t.join()


def test_ctrl_c_ends_a_wait_forever(domain):
    """SIGINT to a process blocked in recv() with no timeout: a
    KeyboardInterrupt within a slice, and the node is still usable."""
    code = textwrap.dedent("""
        import sys, shmrpc
        with shmrpc.Node("waiter", domain=sys.argv[1]) as n:
            print("ready", flush=True)
            try:
                n.recv()
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            print("usable", n.nodes() == ["waiter"], flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", code, domain], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        start = time.monotonic()
        os.kill(p.pid, signal.SIGINT)
        assert p.stdout.readline().strip() == "interrupted"
        assert time.monotonic() - start < 5  # one slice, with slack for a loaded machine
        assert p.stdout.readline().strip() == "usable True"
        assert p.wait(10) == 0
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
