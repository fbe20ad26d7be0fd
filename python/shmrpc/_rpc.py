# SPDX-License-Identifier: MIT
"""Request/response: Node.call, Node.call_stream, Node.serve, Peer.call and
the request a serve function receives (shmrpc.Request)."""
import collections
import errno
import logging
import threading
from time import monotonic as _monotonic
from time import monotonic_ns as _monotonic_ns

from ._lib import NodeClosed, error, ffi, lib, pystr, timeout_ms

SLICE_MS = 250  # as _node.SLICE_MS: Ctrl-C and close() are seen within a slice
_MORE = lib.SHMRPC_REPLY_MORE
_NOWAIT = lib.SHMRPC_REPLY_NOWAIT
_log = logging.getLogger("shmrpc")
_alloc = ffi.new_allocator(should_clear_after_alloc=False)

# What a Request is in: its state moves forward only.
_OPEN, _DEFERRED, _ENDED = 0, 1, 2


class Request:
    """A request, as Node.serve's function receives it: data (bytes, a copy
    taken before the function runs), sender (the caller's node name), id,
    deadline (time.monotonic() seconds, None if the caller waits forever).

    Answer with reply(data, more=False) (more=True streams: more replies
    follow, the last one without it), or reply_error(errno); or return the
    reply from the serve function. To answer later, from any thread, call
    defer() before the function returns and keep the Request (it holds a
    copy of the C struct, as shmrpc.h asks: the library needs nothing else).
    A request the function neither answered nor deferred is answered with
    errno EIO."""

    __slots__ = ("_node", "_c", "_state", "_lock", "data", "sender", "id", "deadline")

    def __init__(self, node, creq):
        self._node = node
        self._c = ffi.new("struct shmrpc_req *")
        self._c[0] = creq[0]  # the struct, as the C contract allows
        self._c.data = ffi.NULL  # points into the ring: invalid after the function
        self._c.len = 0
        self.data = ffi.unpack(ffi.cast("char *", creq.data), creq.len)
        self.sender = pystr(getattr(creq, "from"))
        self.id = creq.id
        d = creq.deadline_ns
        self.deadline = None if d == 0 else d / 1e9
        self._state = _OPEN
        self._lock = threading.Lock()

    def __repr__(self):
        state = ("open", "deferred", "ended")[self._state]
        return f"<shmrpc.Request {self.id} from {self.sender!r} {len(self.data)} bytes {state}>"

    @property
    def ended(self):
        """True once the last reply or an error was sent (or failed)."""
        return self._state == _ENDED

    def defer(self):
        """Keep the request open after the serve function returns: answer it
        later, from any thread. Returns the request."""
        with self._lock:
            if self._state == _OPEN:
                self._state = _DEFERRED
        return self

    def timeout(self):
        """Seconds left until the caller's deadline (>= 0), None if none."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - _monotonic_ns() / 1e9)

    def _end_call(self, what, fn, *args, last=True):
        node = self._node
        h = node._enter()
        try:
            rc = fn(h, self._c, *args)
            if rc < 0:
                if rc not in (-errno.EMSGSIZE, -errno.EAGAIN, -errno.ENOSPC, -errno.ENOMEM,
                              -errno.EMFILE):
                    self._state = _ENDED  # the library no longer holds it
                raise error(rc, f"{what} to {self.sender!r}")
            if last:
                self._state = _ENDED
        finally:
            node._leave()

    def reply(self, data=b"", more=False, nowait=False):
        """Send one reply (any bytes-like object, empty allowed); more=True:
        more replies follow. May block while the caller's reply ring is
        full, at most until the request's deadline; nowait=True: raise
        BlockingIOError at once instead (the request stays open: try again
        later). BrokenPipeError: the caller left or died;
        FileNotFoundError: the request is over; TimeoutError: its deadline
        passed while the ring was full; errno EMSGSIZE: too large for the
        caller (the request stays open)."""
        buf = ffi.from_buffer(data)
        flags = (_MORE if more else 0) | (_NOWAIT if nowait else 0)
        self._end_call("reply", lib.shmrpc_reply, buf, len(buf), flags, last=not more)

    def reply_error(self, err):
        """End the request with errno err (a positive errno, e.g.
        errno.ENOENT; a negative one is taken as -errno): the caller's call
        raises the OSError subclass for it."""
        if isinstance(err, bool) or not isinstance(err, int):
            raise TypeError(f"err must be an errno (int), not {err!r}")
        e = -abs(err)
        if not -4095 <= e < 0:
            raise ValueError(f"err {err}: not an errno in [1, 4095]")
        self._end_call("reply_error", lib.shmrpc_reply_error, e)

    def cancelled(self):
        """True if the caller no longer wants replies: it cancelled the
        call (or closed a call_stream), the deadline passed, the caller is
        gone, or the request is over. A streaming server asks between
        replies."""
        node = self._node
        h = node._enter()
        try:
            rc = lib.shmrpc_req_cancelled(h, self._c)
            if rc < 0:
                raise error(rc, "cancelled")
            return rc == 1
        finally:
            node._leave()


class Server:
    """What Node.serve hands to the C serve function as its arg."""

    __slots__ = ("node", "fn", "errors", "__weakref__")

    def __init__(self, node, fn):
        self.node, self.fn = node, fn
        self.errors = collections.deque(maxlen=16)


def _finish(req, result):
    """After the serve function returned `result`: its return value as the
    last reply, or EIO if it left the request open without defer()."""
    if req._state != _OPEN:
        return
    if result is None:
        _log.warning("shmrpc: serve function returned without replying to request %d "
                     "from %r (nor defer()): answered EIO", req.id, req.sender)
        req.reply_error(errno.EIO)
    else:
        req.reply(result)


def _serve(_h, creq, arg):
    srv = ffi.from_handle(arg)
    req = None
    try:
        req = Request(srv.node, creq)
        _finish(req, srv.fn(req))
    except BaseException as e:  # nothing may unwind through the C frames
        srv.errors.append(e)
        _log.error("shmrpc: serve function raised on request %s from %s",
                   getattr(req, "id", "?"), getattr(req, "sender", "?"), exc_info=e)
        if req is not None and req._state != _ENDED:
            try:
                req.reply_error(errno.EIO)
            except (OSError, NodeClosed):
                pass  # the caller is gone, the node closing: nobody to tell


_callback = []


def c_serve():
    """The C function pointer for _serve, made at first use (see _node)."""
    if not _callback:
        _callback.append(ffi.callback("shmrpc_serve_fn", _serve))
    return _callback[0]


# ------------------------------------------------------------------ calls

class _Call:
    """One call in flight: its id, the Python-side deadline, the buffer."""

    __slots__ = ("node", "id", "ms", "end", "buf", "flags", "over", "what")

    def __init__(self, node, what, timeout, own_buf=False):
        self.node, self.what = node, what
        self.ms = ms = timeout_ms(timeout)
        self.end = None if ms < 0 else _monotonic() + ms / 1000
        self.id = ffi.new("uint64_t *")
        self.flags = ffi.new("unsigned *")
        self.buf = node._call_buf(own_buf)
        self.over = False

    def start(self, send, ms):
        """send(handle, ms, idp) -> rc: shmrpc_call_start or its peer form."""
        h = self.node._enter()
        try:
            rc = send(h, ms, self.id)
            if rc < 0:
                self.over = True
                raise error(rc, self.what)
        finally:
            self.node._leave()

    def next(self):
        """The next reply: (bytes, more). Waits in slices up to the deadline."""
        node, timed_out = self.node, False
        h = node._enter()
        try:
            while True:
                if self.end is None:
                    s = SLICE_MS
                else:
                    left = int((self.end - _monotonic()) * 1000)
                    s = max(0, min(SLICE_MS, left))
                rc = lib.shmrpc_call_wait(h, self.id[0], self.buf, len(self.buf), self.flags,
                                          s)
                if rc >= 0:
                    more = bool(self.flags[0] & _MORE)
                    self.over = not more
                    return ffi.unpack(self.buf, rc), more
                if rc == -errno.ENOENT and timed_out:
                    rc = -errno.ETIMEDOUT  # its own deadline ended it meanwhile
                if rc in (-errno.ETIMEDOUT, -errno.EAGAIN):
                    if s > 0 and (self.end is None or _monotonic() < self.end):
                        timed_out = True
                        if node._life.closing:
                            raise NodeClosed(f"node {node.name!r} closed while calling")
                        continue
                    if self.ms > 0:
                        rc = -errno.ETIMEDOUT  # the caller's timeout, not "would block"
                # Ended by now, or still open (a timeout, a reply too large
                # in a stream): cancel() retires it either way (-ENOENT).
                raise error(rc, self.what)
        finally:
            node._leave()

    def cancel(self):
        """Retire the call unless its last reply came (idempotent)."""
        if self.over:
            return
        self.over = True
        try:
            h = self.node._enter()
        except NodeClosed:
            return  # closing: the call goes with the node
        try:
            lib.shmrpc_call_cancel(h, self.id[0])  # -ENOENT once it is over: fine
        finally:
            self.node._leave()


def call(node, start, what, timeout):
    """The first reply of a call started by start(handle, ms, idp) (see
    _Call.start); the rest of a stream is cancelled."""
    c = _Call(node, what, timeout)
    c.start(start, c.ms)
    try:
        data, _more = c.next()
        return data
    finally:
        c.cancel()


def call_stream(node, start, what, timeout):
    """A generator of every reply of a call; closing it early cancels it."""
    c = _Call(node, what, timeout, own_buf=True)  # the generator may move between threads
    c.start(start, c.ms)
    try:
        while True:
            data, more = c.next()
            yield data
            if not more:
                return
    finally:
        c.cancel()
