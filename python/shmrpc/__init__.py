# SPDX-License-Identifier: MIT
"""libshmrpc for Python: message passing between the processes of one Linux
host through shared memory.

    import shmrpc

    with shmrpc.Node("planner", domain="robot") as node:
        node.wait_node("camera", timeout=1.0)
        node.send("camera", b"start")
        data, sender = node.recv(timeout=0.1)   # TimeoutError after 100 ms
        node.broadcast(b"stop")

Request/response: server.serve(fn) answers each request with fn(req)
(shmrpc.Request: req.data, req.sender, req.reply(data, more=False),
req.reply_error(errno), req.cancelled(), req.defer() to answer later from
another thread; or return the reply); client.call(to, data, timeout) returns
the reply, client.call_stream(to, data) yields each reply of a stream.

Timeouts are in seconds: None waits forever, 0 never blocks. Errors are
OSError subclasses chosen by errno (BrokenPipeError when the peer left or
died, FileNotFoundError for an unknown node, TimeoutError, BlockingIOError,
FileExistsError, PermissionError, ...), all of them shmrpc.Error, with the
library's own text. The library is libshmrpc.so.0: $SHMRPC_LIBRARY (a path)
if set, else where the dynamic loader or `make install` put it.

With asyncio (or selectors), wait for fileno() and dispatch what came:

    import asyncio, shmrpc

    async def main():
        loop = asyncio.get_running_loop()
        with shmrpc.Node("logger", domain="robot") as node:
            def ready():
                try:
                    node.dispatch(lambda data, sender: print(sender, data), timeout=0)
                except BlockingIOError:
                    pass                 # readable can be spurious
            loop.add_reader(node.fileno(), ready)
            try:
                await asyncio.sleep(3600)
            finally:
                loop.remove_reader(node.fileno())

    asyncio.run(main())

Threads: a Node may be used from several Python threads as the C library
allows: sending calls and queries from any number at once, receiving calls
from one at a time. Calls release the GIL while the library works or waits.
"""
from ._lib import LIBRARY, Error, NodeClosed, _tls, cname, ffi, lib, pystr
from ._node import Node
from ._rpc import Request
from ._peer import EV_ALL, EV_DEATH, EV_JOIN, EV_LEAVE, EV_LOG, EVENT_FROM, Event, Peer
from ._zerocopy import TxBuffer

__all__ = ["Node", "Peer", "Event", "EVENT_FROM", "EV_JOIN", "EV_LEAVE", "EV_DEATH", "EV_ALL",
           "EV_LOG", "Request", "Error", "NodeClosed", "TxBuffer", "backend_available", "backend_default",
           "last_error", "set_log", "NAME_MAX", "VERSION", "LIBRARY", "LOG_DEBUG", "LOG_INFO",
           "LOG_WARN"]

NAME_MAX = lib.SHMRPC_NAME_MAX
VERSION = (lib.SHMRPC_VERSION_MAJOR, lib.SHMRPC_VERSION_MINOR)  # of the header bound
LOG_DEBUG, LOG_INFO, LOG_WARN = lib.SHMRPC_LOG_DEBUG, lib.SHMRPC_LOG_INFO, lib.SHMRPC_LOG_WARN


def backend_available(name):
    """Whether wake backend `name` ("uring", "futex") can work here."""
    rc = lib.shmrpc_backend_available(cname(name, "backend"))
    if rc < 0:
        raise ValueError(f"backend {name!r}: unknown (uring, futex)")
    return rc == 1


def backend_default():
    """The backend a Node gets when none is asked for ($SHMRPC_BACKEND aside)."""
    return pystr(lib.shmrpc_backend_default())


def last_error():
    """The text of this thread's last error raised by the binding (the
    library's shmrpc_last_error() for it), "" if none."""
    return getattr(_tls, "text", "")


_log = None  # (fn, C callback): kept alive while the library may call it


def set_log(fn):
    """Send what the library does on its own (a dead node reclaimed, a
    backend fallback...) to fn(level, msg), level one of LOG_DEBUG, LOG_INFO,
    LOG_WARN; None: back to $SHMRPC_LOG (stderr). fn may run in any thread,
    including the library's own, and must not call shmrpc. To forward to
    the logging module:

        log = logging.getLogger("shmrpc")
        shmrpc.set_log(lambda lvl, msg: log.log((10, 20, 30)[lvl], msg))
    """
    global _log
    if fn is None:
        lib.shmrpc_set_log(ffi.NULL, ffi.NULL)  # returns once no old fn runs
        _log = None
        return

    def c_log(level, msg, _arg):
        fn(level, msg and ffi.string(msg).decode("utf-8", "replace"))

    cb = ffi.callback("shmrpc_log_fn", c_log)
    lib.shmrpc_set_log(cb, ffi.NULL)
    _log = (fn, cb)  # the previous callback is no longer running: drop it


def _unhook():
    if _log is not None:
        lib.shmrpc_set_log(ffi.NULL, ffi.NULL)


import atexit  # noqa: E402  (a library thread must not call into a finalizing interpreter)

atexit.register(_unhook)
