# SPDX-License-Identifier: MIT
"""Peer handles (shmrpc.Peer), membership events (shmrpc.Event) and the
batch receives (the buffers of Node.recv_batch and recv_batch_marks)."""
import errno
import weakref
from collections import namedtuple

from ._cdef import EVENT_FROM
from . import _rpc
from ._lib import cname, error, ffi, lib, pystr

EV_JOIN, EV_LEAVE, EV_DEATH = lib.SHMRPC_EV_JOIN, lib.SHMRPC_EV_LEAVE, lib.SHMRPC_EV_DEATH
EV_ALL = EV_JOIN | EV_LEAVE | EV_DEATH
EV_LOG = lib.SHMRPC_EV_LOG
_EVENT_SIZE = ffi.sizeof("struct shmrpc_event")
_TYPES = {EV_JOIN: "join", EV_LEAVE: "leave", EV_DEATH: "death"}


class Event(namedtuple("Event", "type pid id name dropped")):
    """A membership event: the payload of a message whose sender is
    shmrpc.EVENT_FROM (".event"), received by a node opened with events=.

    type: EV_JOIN, EV_LEAVE or EV_DEATH; pid: the node's process id (in its
    own pid namespace); id: slot << 32 | generation, the same for the JOIN
    and the LEAVE or DEATH of one incarnation; name: the node's name;
    dropped: events lost just before this one (the receiver fell more than
    EV_LOG events behind)."""

    __slots__ = ()

    @classmethod
    def parse(cls, data):
        """The Event that `data` (a message from EVENT_FROM) carries;
        ValueError if it is not one."""
        if len(data) != _EVENT_SIZE:
            raise ValueError(f"an event is {_EVENT_SIZE} bytes, not {len(data)}")
        ev = ffi.new("struct shmrpc_event *")
        ffi.memmove(ev, data, _EVENT_SIZE)
        return cls(ev.type, ev.pid, ev.id, pystr(ev.name), ev.dropped)

    @property
    def kind(self):
        """"join", "leave" or "death"."""
        return _TYPES.get(self.type, "unknown")


def events_mask(events):
    """Node(events=...): None/False none, True all, else SHMRPC_EV_* bits."""
    if events is None or events is False:
        return 0
    if events is True:
        return EV_ALL
    if not isinstance(events, int) or events & ~EV_ALL or events < 0:
        raise ValueError(f"events {events!r}: a combination of EV_JOIN, EV_LEAVE, EV_DEATH")
    return events


def _put(life, p):
    """End handle p, never while shmrpc_close runs: a node closing or
    closed puts its remaining handles itself (_Life.close)."""
    with life.lock:
        if p not in life.peers:
            return
        if life.closing:
            return  # _Life.close puts it once shmrpc_close returned
        life.peers.discard(p)
        lib.shmrpc_peer_put(p)


class Peer:
    """One incarnation of a named node, connected: Node.peer(name). Sends
    through it skip the name lookup; once that node has left or died every
    call raises BrokenPipeError, even after a node of that name joined again
    (Node.peer(name) gives a handle to the new one). Usable from several
    threads, as a Node's sends are; close() (or the end of a with block)
    ends it."""

    def __init__(self, node, name, timeout):
        self._node = node
        h = node._enter()
        try:
            out = ffi.new("struct shmrpc_peer **")
            rc = node._wait(lib.shmrpc_peer_get, (h, cname(name)), (out,), timeout)
            if rc < 0:
                raise error(rc, f"peer {name!r}")
            life = node._life
            with life.lock:
                life.peers.add(out[0])
        finally:
            node._leave()
        self._p = out[0]
        self._name = pystr(lib.shmrpc_peer_name(out[0]))
        self._finalizer = weakref.finalize(self, _put, life, out[0])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<shmrpc.Peer {self._name!r} of {self._node.name!r}>"

    def close(self):
        """End the handle (idempotent)."""
        self._finalizer()

    def _call(self, what, fn, pre, post, timeout):
        node = self._node
        h = node._enter()  # close() of the node waits for the call
        try:
            if not self._finalizer.alive:
                raise ValueError(f"peer {self._name!r} is closed")
            rc = node._wait(fn, (self._p,) + pre, post, timeout)
            if rc < 0:
                raise error(rc, f"{what} to {self._name!r}")
            return rc
        finally:
            node._leave()

    def send(self, data, timeout=None, defer=False):
        """Copy one message to this incarnation (as Node.send)."""
        buf = ffi.from_buffer(data)
        flags = lib.SHMRPC_SEND_DEFER if defer else 0
        self._call("send", lib.shmrpc_peer_send, (buf, len(buf)), (flags,), timeout)

    def sendv(self, messages, timeout=None, defer=False):
        """Publish the bytes-like objects of `messages` in order, one message
        each, with at most one wake; returns how many went (>= 1: fewer when
        the ring filled up after the first). The timeout applies while the
        ring is full before the first."""
        bufs = [ffi.from_buffer(m) for m in messages]
        if not bufs:
            raise ValueError("sendv: no messages")
        iov = ffi.new("struct iovec[]", len(bufs))
        for i, b in enumerate(bufs):
            iov[i].iov_base = ffi.cast("void *", b)
            iov[i].iov_len = len(b)
        flags = lib.SHMRPC_SEND_DEFER if defer else 0
        return self._call("sendv", lib.shmrpc_peer_sendv, (iov, len(bufs)), (flags,), timeout)

    def _call_start(self):
        p, name = self._p, self._name
        if not self._finalizer.alive:
            raise ValueError(f"peer {name!r} is closed")
        return p

    def call(self, data, timeout=None):
        """Node.call to this incarnation: BrokenPipeError, never
        FileNotFoundError, once it left or died."""

        p, buf = self._call_start(), ffi.from_buffer(data)
        n = len(buf)

        def start(_h, ms, idp):
            return lib.shmrpc_peer_call_start(p, buf, n, ms, idp)

        return _rpc.call(self._node, start, f"call {self._name!r}", timeout)

    def call_stream(self, data, timeout=None):
        """Node.call_stream to this incarnation."""

        p, buf = self._call_start(), ffi.from_buffer(data)
        n = len(buf)

        def start(_h, ms, idp):
            return lib.shmrpc_peer_call_start(p, buf, n, ms, idp)

        return _rpc.call_stream(self._node, start, f"call {self._name!r}", timeout)

    @property
    def alive(self):
        """True while the incarnation is live as far as the domain knows."""
        if not self._finalizer.alive:
            return False
        node = self._node
        node._enter()
        try:
            return lib.shmrpc_peer_alive(self._p) == 1
        finally:
            node._leave()

    @property
    def name(self):
        return self._name


class Batch:
    """recv_batch's and recv_batch_marks' buffers: n messages of up to size
    bytes and their marks, kept between calls of one node (the receiving
    token guards them)."""

    def __init__(self, n, size):
        self.n, self.size = n, size
        self.bufs = ffi.new("char[]", n * size)
        self.msgs = ffi.new("struct shmrpc_msg[]", n)
        self.marks = ffi.new("struct shmrpc_mark[]", n)
        for i in range(n):
            self.msgs[i].buf = self.bufs + i * size
            self.msgs[i].cap = size

    def take(self, count, marks=False):
        """The first count messages: (bytes, sender), or with marks
        (bytes, sender, bcast, copies)."""
        out = []
        for i in range(count):
            m = self.msgs[i]
            msg = (ffi.unpack(ffi.cast("char *", m.buf), m.len), pystr(getattr(m, "from")))
            out.append(msg + (self.marks[i].bcast, self.marks[i].copies) if marks else msg)
        return out


def recv_large_marked(h):
    """The next message, with its mark, when it did not fit recv_batch_marks'
    buffers (the call left it queued, -EMSGSIZE): a peek says its length,
    then a batch of one that fits takes it with its mark and ends the peek
    (shmrpc.h: any receiving call before the release receives the peeked
    message first)."""
    rx = ffi.new("struct shmrpc_rxbuf *")
    n = lib.shmrpc_peek(h, rx, 0)
    if n < 0:
        raise error(n, "recv_batch_marks")
    b = Batch(1, n)
    rc = lib.shmrpc_recv_batch_marks(h, b.msgs, b.marks, 1, 0)
    if rc != 1 or b.msgs[0].len != n:  # never: the peeked message goes first
        lib.shmrpc_release(h, rx)  # ends the peek (drops a ring found corrupt)
        raise error(rc if rc < 0 else -errno.EPROTO, "recv_batch_marks")
    return b.take(1, True)[0]


__all__ = ["Event", "Peer", "EVENT_FROM", "EV_JOIN", "EV_LEAVE", "EV_DEATH", "EV_ALL", "EV_LOG"]
