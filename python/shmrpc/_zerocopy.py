# SPDX-License-Identifier: MIT
"""Zero-copy receive (Node.peek) and send (Node.reserve) as context managers.

A view handed out points into a shared ring. Python 3.11 offers no way to
revoke a buffer, so the view given to the block is released when the block
ends (using it then raises ValueError), and anything else still holding that
memory (a slice of the view, a numpy array made from it) is detected by the
reference count of the buffer object under the view: then a peeked message
is not released (the memory it points to stays the message's, never reused)
and the block raises BufferError; the next receiving call releases it once
those views are gone, or raises BufferError again. The pointer under the
view also keeps the node alive, so garbage collection never unmaps a ring
under a view.
"""
import errno
import sys
import threading

from ._lib import error, ffi, lib, make_error, pystr


def _view_base(node, ptr, length):
    """A buffer object over [ptr, ptr + length) whose existence keeps node
    alive, and its reference count with no view on it."""
    keep = ffi.gc(ffi.cast("char *", ptr), lambda _p, _node=node: None)
    return ffi.buffer(keep, length)


class _Views:
    """The views made over one buffer object, and whether any outlives."""

    def __init__(self, node, ptr, length, readonly):
        self.base = _view_base(node, ptr, length)
        self.baseline = sys.getrefcount(self.base)
        m = memoryview(self.base)
        self.view = m.toreadonly() if readonly else m
        if readonly:
            m.release()

    def outlived(self):
        """Release the block's view; True if any other view is still alive."""
        try:
            self.view.release()
        except BufferError:  # exported (numpy, ffi.from_buffer...): still in use
            return True
        return sys.getrefcount(self.base) > self.baseline


class State:
    """Per node: the receiving token (one receiving call, or one peek block,
    at a time) and a peeked message whose views outlived their block."""

    def __init__(self):
        self.token = threading.Lock()
        self.pending = None  # a Peek whose views are still alive

    def acquire(self):
        if not self.token.acquire(False):
            raise make_error(errno.EBUSY, "another thread receives from this node, "
                             "or a peek block of it is open")

    def settle(self, h):
        """Token held: release the pending peeked message if its views are
        gone (BufferError if not)."""
        p = self.pending
        if p is None:
            return
        if p.views.outlived():
            raise BufferError("a view of a message peeked earlier is still alive: "
                              "drop it before receiving again")
        self.pending = None
        rc = lib.shmrpc_release(h, p.rx)
        if rc < 0:
            raise error(rc, "release of a peeked message")

    def stale_views(self):
        return self.pending is not None and self.pending.views.outlived()


class Peek:
    __slots__ = ("node", "timeout", "h", "rx", "views")

    def __init__(self, node, timeout):
        self.node, self.timeout = node, timeout

    def __enter__(self):
        node = self.node
        self.h = h = node._rx_enter()
        try:
            self.rx = rx = ffi.new("struct shmrpc_rxbuf *")
            rc = node._wait(lib.shmrpc_peek, (h, rx), (), self.timeout)
            if rc < 0:
                raise error(rc, "peek")
            self.views = _Views(node, rx.data, rx.len, True)
        except BaseException:
            node._rx_leave()
            raise
        return self.views.view, pystr(getattr(rx, "from"))

    def __exit__(self, et, ev, tb):
        node = self.node
        try:
            if self.views.outlived():
                node._zc.pending = self
                raise BufferError("peek: a slice or export of the view outlives the with "
                                  "block; the message stays unreleased until it is gone")
            rc = lib.shmrpc_release(self.h, self.rx)
            if rc < 0 and et is None:
                raise error(rc, "peek: release")
        finally:
            node._rx_leave()


class TxBuffer:
    """The space reserve() gives: slice assignment and reading delegate to
    .view (a writable memoryview, for readinto() and struct.pack_into());
    .length is what the commit publishes (default: all of it)."""

    __slots__ = ("view", "_length", "cancelled")

    def __init__(self, view):
        self.view, self._length, self.cancelled = view, len(view), False

    def __len__(self):
        return len(self.view)

    def __getitem__(self, k):
        v = self.view[k]
        if isinstance(v, memoryview):  # a copy: no view may outlive the block
            with v:
                return v.tobytes()
        return v

    def __setitem__(self, k, v):
        self.view[k] = v

    @property
    def length(self):
        return self._length

    @length.setter
    def length(self, n):
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"length must be an int, not {type(n).__name__}")
        if not 0 <= n <= len(self.view):
            raise ValueError(f"length {n}: not in [0, {len(self.view)}]")
        self._length = n

    def cancel(self):
        """Send nothing when the block ends."""
        self.cancelled = True


class Reserve:
    __slots__ = ("node", "to", "size", "timeout", "flags", "h", "tx", "views", "buf")

    def __init__(self, node, to, size, timeout, defer):
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"size must be an int, not {type(size).__name__}")
        if size < 0:
            raise ValueError(f"size {size}: negative")
        self.node, self.to, self.size, self.timeout = node, to, size, timeout
        self.flags = lib.SHMRPC_SEND_DEFER if defer else 0

    def __enter__(self):
        node, to, size = self.node, self.to, self.size
        self.h = h = node._enter()
        try:
            self.tx = tx = ffi.new("struct shmrpc_txbuf *")
            rc = node._wait(lib.shmrpc_reserve, (h, to, size, tx), (), self.timeout)
            if rc < 0:
                raise error(rc, f"reserve for {to.decode(errors='replace')!r}")
            self.views = _Views(node, tx.data, tx.cap, False)
        except BaseException:
            node._leave()
            raise
        self.buf = TxBuffer(self.views.view)
        return self.buf

    def __exit__(self, et, ev, tb):
        try:
            outlived = self.views.outlived()
            if et is not None or self.buf.cancelled or outlived:
                lib.shmrpc_cancel(self.h, self.tx)
            else:
                rc = lib.shmrpc_commit_flags(self.h, self.tx, self.buf.length, self.flags)
                if rc < 0:
                    raise error(rc, "reserve: commit")
            if outlived:
                raise BufferError("reserve: a slice or export of the buffer outlives the with "
                                  "block; nothing was sent")
        finally:
            self.node._leave()
