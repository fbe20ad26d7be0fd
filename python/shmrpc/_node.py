# SPDX-License-Identifier: MIT
"""shmrpc.Node: one process's membership of a domain."""
import errno
import threading
import traceback
import weakref
from time import monotonic as _monotonic
from threading import get_ident as _get_ident

from . import _peer, _rpc, _zerocopy
from ._lib import (INT_MAX, NodeClosed, check, cname, error, ffi, lib, make_error, pystr,
                   timeout_ms)

# A blocking call waits in slices of at most this long, so that Ctrl-C
# (Python runs signal handlers between slices only) and close() from another
# thread end it within a slice. Each slice is one more call into the library:
# a few per second, against its own 500 ms safety wake-ups.
SLICE_MS = 250
RECV_BUF = 4096  # recv's first buffer; it grows to fit the largest message seen,
RECV_BUF_MAX = 1 << 20  # up to this; larger ones are copied from the ring directly
_alloc = ffi.new_allocator(should_clear_after_alloc=False)
NAME_BUF = lib.SHMRPC_NAME_MAX + 1
_ETIMEDOUT = -errno.ETIMEDOUT
_STATS = [f for f, _ in ffi.typeof("struct shmrpc_stats").fields]


class _Life:
    """What close() and the finalizer share: the handle, the calls running,
    the closing flag. No reference to the Node, so that a Node nobody holds
    is collected and its finalizer closes it."""

    __slots__ = ("h", "lock", "idle", "users", "closing", "bg_tids", "peers")

    def __init__(self, h):
        self.h = h
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)  # notified while closing only
        self.users = {}  # thread id -> calls of it running on the node, under lock
        self.closing = False
        self.bg_tids = set()  # threads in start()'s handler
        self.peers = set()  # shmrpc_peer handles not put yet, under lock

    def close(self, flags=0):
        """Wait for the calls running (blocking ones notice within a slice),
        then shmrpc_close_flags(flags). Also run, with flags 0, at
        interpreter exit, when daemon threads may still be in calls."""
        with self.lock:
            if self.h is None:
                return
            self.closing = True
            while self.users:
                self.idle.wait()
            h, self.h = self.h, None
        rc = lib.shmrpc_close_flags(h, flags)  # stops start()'s thread
        if rc < 0:  # an unknown flag: the node is still open, close it anyway
            lib.shmrpc_close(h)
        with self.lock:  # handles may be put after their node closed
            peers, self.peers = self.peers, set()
        for p in peers:
            lib.shmrpc_peer_put(p)
        check(rc, "close")


class _Handler:
    """What dispatch() and start() hand to the C callback as its arg."""

    __slots__ = ("fn", "errors", "node", "background")

    def __init__(self, node, fn, background):
        self.node, self.fn, self.background, self.errors = node, fn, background, []


def _handle(_node, sender, data, length, arg):
    h = ffi.from_handle(arg)
    node = h.node
    tids = node._life.bg_tids
    if h.background:  # shmrpc_start's thread: it may not close the node
        tids.add(_get_ident())
    try:
        h.fn(ffi.unpack(ffi.cast("char *", data), length), pystr(sender))
    except BaseException as e:  # nothing may unwind through the C frames
        h.errors.append(e)
        if h.background:
            traceback.print_exception(e)
    finally:
        if h.background:
            tids.discard(_get_ident())


_callback = []  # the C function pointer for _handle, made at first use


def _c_handler():
    """Made lazily: a cffi callback needs executable memory, which a
    hardened system may refuse; then only dispatch() and start() fail."""
    if not _callback:
        _callback.append(ffi.callback("shmrpc_handler", _handle))
    return _callback[0]


class Node:
    """A node of a domain: ``Node(name, domain=None, ...)``, best used as a
    context manager (close() on exit).

    Options, None meaning the library's default: domain ($SHMRPC_DOMAIN, else
    "default"), ring_bytes (of each ring delivering to this node, a power of
    two in [4096, 2**30], 256 KiB), max_nodes (registry capacity if this call
    creates it, 1024), mode (permission bits of created segments, 0o600),
    backend ("uring", "futex"; $SHMRPC_BACKEND overrides), spin_us (longest
    receiver spin before sleeping, $SHMRPC_SPIN_US else 20; 0 never spins),
    events (membership events received as messages from shmrpc.EVENT_FROM:
    True for all, or shmrpc.EV_JOIN | EV_LEAVE | EV_DEATH bits; decode them
    with shmrpc.Event.parse), bcast_marks (True: broadcast copies to this
    node carry marks, which recv_batch_marks reports; every other receiving
    call gets them as plain messages).

    Timeouts are in seconds: None waits forever, 0 never blocks
    (BlockingIOError when the call would have to wait), > 0 waits at most
    that long (TimeoutError). Errors are shmrpc.Error, an OSError subclass
    chosen by errno (BrokenPipeError, FileNotFoundError, ...) whose message
    is the library's own text.

    Threads: send, broadcast, flush, reserve and the queries may run from
    several threads at once; the receiving calls (recv, peek, dispatch) from
    one thread at a time (another one gets errno EBUSY), and not while
    start()'s handler runs. The GIL is released while the library waits.
    close() waits until calls running in other threads return: blocking
    ones notice it within 0.25 s and raise NodeClosed.
    """

    def __init__(self, name, domain=None, ring_bytes=None, max_nodes=None, mode=None,
                 backend=None, spin_us=None, events=None, bcast_marks=False):
        opts = ffi.new("struct shmrpc_opts *")
        opts.sz = ffi.sizeof("struct shmrpc_opts")
        keep = []  # C strings the options point to, alive until open returns
        for field, value in (("domain", domain), ("backend", backend)):
            if value is not None:
                keep.append(ffi.new("char[]", cname(value, field)))
                setattr(opts, field, keep[-1])
        for field, value, hi in (("ring_bytes", ring_bytes, 2**32 - 1),
                                 ("max_nodes", max_nodes, 2**32 - 1), ("mode", mode, 2**32 - 1),
                                 ("spin_us", spin_us, INT_MAX)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{field} must be an int, not {type(value).__name__}")
            if field == "spin_us" and value == 0:
                value = lib.SHMRPC_SPIN_NEVER  # the C 0 means "default"
            elif value < (-2**31 if field == "spin_us" else 0) or value > hi:
                raise ValueError(f"{field} {value}: out of range")
            setattr(opts, field, value)
        opts.events = _peer.events_mask(events)
        opts.flags = lib.SHMRPC_OPEN_BCAST_MARKS if bcast_marks else 0
        out = ffi.new("struct shmrpc_node **")
        check(lib.shmrpc_open(cname(name), opts, out), f"open {name!r}")
        self._life = _Life(out[0])
        # Closes the node if it is garbage-collected, and at interpreter exit.
        self._finalizer = weakref.finalize(self, self._life.close)
        self._name = pystr(lib.shmrpc_name(out[0]))
        self._domain = pystr(lib.shmrpc_domain(out[0]))
        self._backend = pystr(lib.shmrpc_backend(out[0]))
        self._rbuf = _alloc("char[]", RECV_BUF)  # recv's; grows to RECV_BUF_MAX
        self._rfrom = ffi.new("char[]", NAME_BUF)
        self._zc = _zerocopy.State()  # zero-copy views handed out
        self._bg = None  # start()'s _Handler and its handle
        self._srv = None  # serve()'s _rpc.Server and its handle
        self._cbufs = threading.local()  # call()'s reply buffer, per thread
        self._batch = None  # recv_batch's buffers (_peer.Batch)

    # ---------------------------------------------------------------- life

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._life.h is None else f"backend={self._backend!r}"
        return f"<shmrpc.Node {self._name!r} domain={self._domain!r} {state}>"

    def _enter(self):
        """Count a call of this thread on the node (close() waits for it)."""
        tid, life = _get_ident(), self._life
        with life.lock:
            if life.h is None or life.closing:
                raise NodeClosed(f"node {self._name!r} is closed")
            life.users[tid] = life.users.get(tid, 0) + 1
        return life.h

    def _leave(self):
        tid, life = _get_ident(), self._life
        with life.lock:
            n = life.users.pop(tid) - 1
            if n:
                life.users[tid] = n
            elif life.closing and not life.users:
                life.idle.notify_all()

    def close(self, *, dead=False):
        """Leave the domain (idempotent). Waits for calls running in other
        threads; raises RuntimeError from inside a call on this node (a
        handler, a peek or reserve block) and BufferError while a view of a
        peeked message outlives its block (mmap.close() does the same).
        dead=True: the domain's subscribers (events=) get EV_DEATH for this
        node instead of EV_LEAVE, as if its process had died (a node that
        stands for another one, which died); the rest is a plain close. Only
        the first close of a node counts: a later one does nothing."""
        life = self._life
        with life.lock:
            if life.h is None:
                return
            tid = _get_ident()
            if tid in life.users or tid in life.bg_tids:
                raise RuntimeError("close() from inside a call on this node")
            if self._zc.stale_views():
                raise BufferError("close(): a view of a peeked message is still alive")
        if not dead:
            self._finalizer()  # _Life.close, once: waits for the calls running
        elif self._finalizer.detach():  # the same, once, with the flag
            life.close(lib.SHMRPC_CLOSE_DEAD)
        self._bg = None  # its handle: only now that the thread is gone

    @property
    def closed(self):
        return self._life.h is None

    # ------------------------------------------------------------ helpers

    def _wait(self, fn, pre, post, timeout):
        """fn(*pre, timeout_ms, *post), waiting in slices (see SLICE_MS)
        until it stops timing out or the caller's timeout has passed."""
        ms = -1 if timeout is None else timeout_ms(timeout)
        if 0 <= ms <= SLICE_MS:
            return fn(*pre, ms, *post)
        start = _monotonic() if ms > 0 else 0.0
        rc = fn(*pre, SLICE_MS, *post)
        while rc == _ETIMEDOUT:
            if self._life.closing:
                raise NodeClosed(f"node {self._name!r} closed while waiting")
            s = SLICE_MS
            if ms > 0:
                left = ms - int((_monotonic() - start) * 1000)
                if left <= 0:
                    break
                s = min(s, left)
            rc = fn(*pre, s, *post)
        return rc

    def _simple(self, what, fn, *args):
        h = self._enter()
        try:
            return check(fn(h, *args), what)
        finally:
            self._leave()

    # ------------------------------------------------------------ sending

    def send(self, to, data, timeout=None, defer=False):
        """Copy one message (any bytes-like object, empty allowed) to node
        `to`. Waits only while its ring is full. defer=True holds back the
        wake a sleeping receiver needs until flush()."""
        cto, buf = cname(to, "to"), ffi.from_buffer(data)
        flags = lib.SHMRPC_SEND_DEFER if defer else 0
        h = self._enter()
        try:
            rc = self._wait(lib.shmrpc_send_flags, (h, cto, buf, len(buf)), (flags,), timeout)
            if rc < 0:
                raise error(rc, f"send to {to!r}")
        finally:
            self._leave()

    def flush(self):
        """Issue the wakes held back by send(defer=True); returns how many."""
        return self._simple("flush", lib.shmrpc_flush)

    def broadcast(self, data, timeout=None):
        """Send to every other live node; returns how many got it. The
        timeout bounds the whole call (not interrupted by Ctrl-C)."""
        buf = ffi.from_buffer(data)
        return self._simple("broadcast", lib.shmrpc_broadcast, buf, len(buf), timeout_ms(timeout))

    def reserve(self, to, size, timeout=None, defer=False):
        """Zero-copy send, as a context manager::

            with node.reserve("cam", 4096) as buf:
                buf[:n] = header + payload   # or: f.readinto(buf.view)
                buf.length = n               # default: all of size

        The message is committed when the block ends normally, cancelled
        (nothing sent) when it raises or calls buf.cancel()."""
        return _zerocopy.Reserve(self, cname(to, "to"), size, timeout, defer)

    # ---------------------------------------------------------- receiving

    def _rx_enter(self):
        """_enter, plus the receiving token (see _zerocopy.State)."""
        h = self._enter()
        zc = self._zc
        try:
            zc.acquire()
            if zc.pending is not None:
                try:
                    zc.settle(h)
                except BaseException:
                    zc.token.release()
                    raise
        except BaseException:
            self._leave()
            raise
        return h

    def _rx_leave(self):
        self._zc.token.release()
        self._leave()

    def recv(self, timeout=None, bufsize=None):
        """Receive one message: (bytes, sender name). bufsize None takes
        messages of any length; an int refuses longer ones with errno
        EMSGSIZE and leaves them queued."""
        if bufsize is not None and (isinstance(bufsize, bool) or not isinstance(bufsize, int)
                                    or bufsize < 0):
            raise ValueError(f"bufsize {bufsize!r}: not an int >= 0")
        h = self._rx_enter()
        try:
            buf, frm = self._rbuf, self._rfrom  # ours: the token is held
            cap = len(buf) if bufsize is None else min(len(buf), bufsize)
            rc = self._wait(lib.shmrpc_recv, (h, buf, cap, frm), (), timeout)
            if rc >= 0:
                return ffi.unpack(buf, rc), pystr(frm)
            if rc != -errno.EMSGSIZE:
                raise error(rc, "recv")
            return self._recv_large(h, bufsize)
        finally:
            self._rx_leave()

    def _recv_large(self, h, bufsize):
        """The next message does not fit the buffer (shmrpc_recv left it
        queued): copy it from the ring, and grow the buffer for next time."""
        rx = ffi.new("struct shmrpc_rxbuf *")
        rc = check(lib.shmrpc_peek(h, rx, 0), "recv")
        if bufsize is not None and rc > bufsize:
            raise make_error(errno.EMSGSIZE, f"recv: message of {rc} bytes, bufsize {bufsize}")
        data = ffi.unpack(ffi.cast("char *", rx.data), rc)
        sender = pystr(getattr(rx, "from"))
        check(lib.shmrpc_release(h, rx), "recv")
        want = min(1 << (rc - 1).bit_length(), RECV_BUF_MAX)
        if want > len(self._rbuf):
            self._rbuf = _alloc("char[]", want)
        return data, sender

    def recv_batch(self, n=32, timeout=None, size=4096):
        """Wait for the first message, then take those already waiting, up
        to n: a list of (bytes, sender name), one call into the library. A
        message longer than size bytes is returned alone (the batch ends
        before it, and the next call returns it by itself)."""
        return self._recv_batch(n, timeout, size, False)

    def recv_batch_marks(self, n=32, timeout=None, size=4096):
        """recv_batch with broadcast marks: a list of (bytes, sender name,
        bcast, copies). For a marked broadcast copy (this node opened with
        bcast_marks=True) bcast is the broadcast's number (not 0; one
        sender's broadcasts have distinct, increasing ones) and copies how
        many marked copies it made, this one included; else both are 0. A
        marked copy ends the batch: it comes last. A message longer than
        size bytes is returned alone, as by recv_batch, with its mark."""
        return self._recv_batch(n, timeout, size, True)

    def _recv_batch(self, n, timeout, size, marks):
        if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= 4096:
            raise ValueError(f"n {n!r}: not an int in [1, 4096]")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= RECV_BUF_MAX:
            raise ValueError(f"size {size!r}: not an int in [0, {RECV_BUF_MAX}]")
        h = self._rx_enter()
        try:
            b = self._batch
            if b is None or b.n != n or b.size != size:
                b = self._batch = _peer.Batch(n, size)
            if marks:
                rc = self._wait(lib.shmrpc_recv_batch_marks, (h, b.msgs, b.marks, n), (),
                                timeout)
            else:
                rc = self._wait(lib.shmrpc_recv_batch, (h, b.msgs, n), (), timeout)
            if rc >= 0:
                return b.take(rc, marks)
            if rc != -errno.EMSGSIZE:
                raise error(rc, "recv_batch_marks" if marks else "recv_batch")
            return [_peer.recv_large_marked(h) if marks else self._recv_large(h, None)]
        finally:
            self._rx_leave()

    def peek(self, timeout=None):
        """Zero-copy receive, as a context manager yielding (memoryview,
        sender)::

            with node.peek(1.0) as (view, sender):
                handle(view)

        The read-only view points into the shared ring and is released when
        the block ends (using it then raises ValueError). The sender could
        still write to that memory: validate what you read (or copy it).
        A slice or export of the view must not outlive the block: if one
        does, the block raises BufferError and the message stays unreleased
        (no view ever reads reused memory) until it is gone."""
        return _zerocopy.Peek(self, timeout)

    def dispatch(self, fn, timeout=None):
        """Wait for the first message, then call fn(data: bytes, sender: str)
        for it and every message already waiting; returns how many. If fn
        raises, the messages already taken are still handed to it, then the
        first exception is raised. fn may send, but not receive."""
        h = self._rx_enter()
        try:
            ctx = _Handler(self, fn, False)
            arg = ffi.new_handle(ctx)
            rc = self._wait(lib.shmrpc_dispatch, (h, _c_handler(), arg), (), timeout)
            if ctx.errors:
                e = ctx.errors[0]
                if len(ctx.errors) > 1:
                    e.add_note(f"shmrpc: fn raised {len(ctx.errors) - 1} more times in this call")
                raise e
            return check(rc, "dispatch")
        finally:
            self._rx_leave()

    def start(self, fn):
        """Run a library thread calling fn(data, sender) for every message
        (the receiving calls then raise errno EBUSY). Its exceptions are
        printed, and the first one is raised again by stop()."""
        h = self._rx_enter()
        try:
            ctx = _Handler(self, fn, True)
            arg = ffi.new_handle(ctx)
            check(lib.shmrpc_start(h, _c_handler(), arg), "start")
            self._bg = (ctx, arg)
        finally:
            self._rx_leave()

    def stop(self):
        """Stop and join start()'s thread (errno EDEADLK from its handler)."""
        self._simple("stop", lib.shmrpc_stop)
        ctx, self._bg = self._bg, None
        if ctx and ctx[0].errors:
            raise ctx[0].errors[0]

    def fileno(self):
        """An eventfd that becomes readable when messages may be waiting, for
        selectors, asyncio's add_reader or select; when it does, call
        dispatch(fn, 0) (or recv(0) until BlockingIOError). Readable may be
        spurious. Owned by the node: do not close it."""
        return self._simple("fileno", lib.shmrpc_fd)  # the same descriptor every time

    # ---------------------------------------------------- request/response

    def _call_buf(self, own=False):
        """A buffer for the largest reply this node can get (the reply ring
        is sized as this node's rings): per thread, or its own."""
        if own:
            return _alloc("char[]", self._max_reply())
        b = getattr(self._cbufs, "buf", None)
        if b is None:
            b = self._cbufs.buf = _alloc("char[]", self._max_reply())
        return b

    def _max_reply(self):
        n = getattr(self, "_maxrep", None)
        if n is None:
            n = self._maxrep = self.max_size()
        return n

    def call(self, to, data, timeout=None):
        """Send request `data` (bytes-like) to node `to`, which serves
        (serve()), and return its reply (bytes); if it streams, the rest is
        cancelled. The timeout covers the whole call and travels with the
        request as its deadline. Errors: FileNotFoundError (no live node of
        that name), errno EOPNOTSUPP (it does not serve), TimeoutError
        (BlockingIOError for timeout 0 with no reply yet), BrokenPipeError
        (the server left or died before replying: the request may or may
        not have run), errno EMSGSIZE (request too large), BlockingIOError
        (max_calls calls in flight), errno ENOSPC/ENOMEM/EMFILE/ENFILE/EFBIG
        (the ring to the server or its reply ring could not be made: the
        next call tries again), or the OSError subclass of the errno the
        server replied with (reply_error)."""
        cto, buf = cname(to, "to"), ffi.from_buffer(data)
        n = len(buf)

        def start(h, ms, idp):
            return lib.shmrpc_call_start(h, cto, buf, n, ms, idp)

        return _rpc.call(self, start, f"call {to!r}", timeout)

    def call_stream(self, to, data, timeout=None):
        """A generator of the replies to request `data` sent to node `to`:
        each reply of a stream (the server's reply(more=True)), ending
        after the last. The call starts at the first iteration; closing
        the generator early (break, close()) cancels it, which the server
        sees (Request.cancelled()). Errors as call(); timeout covers the
        whole stream."""
        cto, buf = cname(to, "to"), ffi.from_buffer(data)
        n = len(buf)

        def start(h, ms, idp):
            return lib.shmrpc_call_start(h, cto, buf, n, ms, idp)

        return _rpc.call_stream(self, start, f"call {to!r}", timeout)

    def serve(self, fn):
        """Answer requests with fn(req) from now on (req: shmrpc.Request);
        None: stop (callers then get errno EOPNOTSUPP). fn runs in whichever
        receiving call runs (recv, dispatch, recv_batch, peek, start()'s
        thread), never returned as a message. It answers with req.reply()
        / req.reply_error(), or returns the reply (bytes-like), or calls
        req.defer() and answers later from any thread. If fn raises, the
        caller gets errno EIO and the exception is logged (logger "shmrpc")
        and kept in serve_errors (the last 16)."""
        if fn is not None and not callable(fn):
            raise TypeError(f"serve: fn must be callable or None, not {fn!r}")
        h = self._enter()
        try:
            if fn is None:
                check(lib.shmrpc_serve(h, ffi.NULL, ffi.NULL), "serve")
                self._srv = None  # the old function runs no more (or is running: it holds it)
                return
            srv = _rpc.Server(self, fn)
            arg = ffi.new_handle(srv)
            if self._srv is not None:
                srv.errors = self._srv[0].errors
            check(lib.shmrpc_serve(h, _rpc.c_serve(), arg), "serve")
            self._srv = (srv, arg)
        finally:
            self._leave()

    @property
    def serve_errors(self):
        """The last exceptions serve()'s function raised (a deque)."""
        return self._srv[0].errors if self._srv else _rpc.Server(None, None).errors

    # ------------------------------------------------------------ peers

    def peer(self, name, timeout=None):
        """A handle (shmrpc.Peer) to the node now named `name`, waiting for
        it to join as wait_node does; best used as a context manager."""
        return _peer.Peer(self, name, timeout)

    # ------------------------------------------------------------ queries

    def wait_node(self, name, timeout=None):
        """Return as soon as a node of that name is live."""
        cn = cname(name)
        h = self._enter()
        try:
            rc = self._wait(lib.shmrpc_wait_node, (h, cn), (), timeout)
            if rc < 0:
                raise error(rc, f"wait_node {name!r}")
        finally:
            self._leave()

    def nodes(self):
        """Names of the live nodes of the domain, this one included."""
        cap = 64
        while True:
            names = ffi.new("char[][%d]" % NAME_BUF, cap)
            n = self._simple("nodes", lib.shmrpc_nodes, names, cap)
            if n <= cap:
                return [pystr(names[i]) for i in range(n)]
            cap = n + 16  # more joined meanwhile: room for some more

    def is_local(self, name):
        """Whether a live node of that name is in the domain and runs on this
        host (a shmrpc-bridge proxy for a node of another host is not)."""
        return self._simple(f"is_local {name!r}", lib.shmrpc_is_local, cname(name)) == 1

    def node_host(self, name):
        """Where node `name` runs: None on this host, else the name of the
        host a shmrpc-bridge proxy stands for. FileNotFoundError if no live
        node has that name."""
        host = ffi.new("char[]", NAME_BUF)
        rc = self._simple(f"node_host {name!r}", lib.shmrpc_node_host, cname(name), host,
                          NAME_BUF)
        return pystr(host) if rc == 1 else None

    def max_size(self, to=None):
        """Largest message node `to` (None: this node) can receive."""
        cto = ffi.NULL if to is None else cname(to, "to")
        return self._simple(f"max_size {to!r}", lib.shmrpc_max_size, cto)

    def warmup(self):
        """Connect to every other live node now; returns the connections."""
        return self._simple("warmup", lib.shmrpc_warmup)

    def stats(self):
        """This node's counters since it joined, as a dict."""
        st = ffi.new("struct shmrpc_stats *")
        # The size this cdef knows: a library newer than the cdef fills
        # no more than that.
        self._simple("stats", lib.shmrpc_stats_size, st, ffi.sizeof(st[0]))
        return {f: getattr(st, f) for f in _STATS}

    @property
    def name(self):
        return self._name

    @property
    def domain(self):
        return self._domain

    @property
    def backend(self):
        """The wake backend in use: "uring" or "futex"."""
        return self._backend
