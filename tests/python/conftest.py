# SPDX-License-Identifier: MIT
"""Fixtures of the Python binding's tests: fresh domains (checked clean in
/dev/shm afterwards), peer processes in Python and in C, sleeping waits.

Run through tests/python/run.sh (make test does), which sets SHMRPC_LIBRARY
to the build's libshmrpc.so.0 and PYTHONPATH to python/.
"""
import itertools
import os
import re
import subprocess
import sys
import time

import pytest

import shmrpc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("SHMRPC_TEST_BUILD", os.path.join(ROOT, "build"))
ECHO_PEER = os.path.join(BUILD, "tests", "echo_peer")
_counter = itertools.count()


def shm_files(domain):
    """This domain's files in /dev/shm (exactly this domain, not a prefix)."""
    pre = f"shmrpc.{domain}."
    # "reg", or "<kind>.<16 hex>" (node, ring, repl...: lib/names.c)
    return sorted(f for f in os.listdir("/dev/shm") if f.startswith(pre) and
                  re.fullmatch(r"reg|[a-z]{4}\.[0-9a-f]{16}", f[len(pre):]))


def wait_for(cond, timeout=10.0, what="condition"):
    """Sleeping wait (10 ms steps) until cond() is true; fails the test if
    it never is."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.01)


@pytest.fixture
def domain():
    """A fresh domain; nothing of it may be left in /dev/shm afterwards."""
    name = f"py{os.getpid()}-{next(_counter)}-{time.monotonic_ns() & 0xfffff:x}"
    yield name
    left = []
    end = time.monotonic() + 5  # a killed peer's files go with the reaper or a peer
    while time.monotonic() < end:
        left = shm_files(name)
        if not left:
            break
        time.sleep(0.02)
    for f in left:
        os.unlink(os.path.join("/dev/shm", f))
    assert not left, f"left in /dev/shm: {left}"


@pytest.fixture
def pair(domain):
    """Two nodes of one fresh domain in this process."""
    with shmrpc.Node("a", domain=domain) as a, shmrpc.Node("b", domain=domain) as b:
        yield a, b


class Peer:
    """A peer process: its stdout gives one line when it is ready."""

    def __init__(self, argv, **kw):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, **kw)
        line = self.p.stdout.readline()  # sleeps until the peer speaks or dies
        if not line.startswith("ready"):
            self.p.kill()
            _, err = self.p.communicate(timeout=10)
            pytest.fail(f"peer {argv}: not ready ({line!r}): {err}")
        self.ready = line.strip()

    def wait(self, timeout=20):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            pytest.fail("peer did not end")

    def kill(self):
        self.p.kill()
        self.p.wait()

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            f.close()


@pytest.fixture
def spawn():
    """spawn(argv) or spawn_py(code, *args): peers killed at teardown."""
    peers = []

    def start(argv, **kw):
        peers.append(Peer(argv, **kw))
        return peers[-1]

    yield start
    for p in peers:
        p.close()


# First thing a peer does: die with the test (PR_SET_PDEATHSIG, SIGKILL), so
# a test killed midway leaves no peer blocked in a receive.
DIE_WITH_PARENT = "import ctypes; ctypes.CDLL(None).prctl(1, 9)\n"


def py_argv(code, *args):
    """A Python peer running code (sys.argv[1:] = args); it must print
    'ready' once it can be talked to."""
    return [sys.executable, "-c", DIE_WITH_PARENT + code, *map(str, args)]


def echo_peer_argv(domain, name, ring_bytes=None):
    if not os.access(ECHO_PEER, os.X_OK):
        pytest.fail(f"{ECHO_PEER} missing: make tests builds it")
    return [ECHO_PEER, domain, name] + ([str(ring_bytes)] if ring_bytes else [])
