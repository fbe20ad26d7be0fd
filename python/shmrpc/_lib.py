# SPDX-License-Identifier: MIT
"""Loading libshmrpc (cffi, ABI mode), and what every call shares: errors,
timeouts, names."""
import ctypes.util
import math
import os
import re
import threading

import cffi

from ._cdef import CDEF, CDEF_SYS, FUNCTIONS

SONAME = "libshmrpc.so.0"
INT_MAX = 2**31 - 1

ffi = cffi.FFI()
ffi.cdef(CDEF_SYS)
ffi.cdef(CDEF)


def _candidates():
    """Where to look, in order, when $SHMRPC_LIBRARY is not set."""
    yield SONAME  # the dynamic loader's own search: LD_LIBRARY_PATH, ld.so.cache
    try:
        from ._config import LIBDIR  # written by `make install`
    except ImportError:
        LIBDIR = None
    if LIBDIR:
        yield os.path.join(LIBDIR, SONAME)
    found = ctypes.util.find_library("shmrpc")
    if found and os.path.basename(found).startswith(SONAME):
        yield found


def _load():
    explicit = os.environ.get("SHMRPC_LIBRARY")
    if explicit:
        # Asked for by path: that one or nothing, never a silent fallback.
        try:
            return ffi.dlopen(explicit), explicit
        except OSError as e:
            raise ImportError(f"shmrpc: SHMRPC_LIBRARY={explicit}: cannot load it: {e}") from e
    tried = []
    for path in _candidates():
        try:
            return ffi.dlopen(path), path
        except OSError as e:
            tried.append(f"{path}: {e}")
    raise ImportError(
        f"shmrpc: {SONAME} not found. Install libshmrpc (`make install`, then `ldconfig`) "
        f"where the dynamic loader finds it, or set SHMRPC_LIBRARY to the path of "
        f"{SONAME} (e.g. SHMRPC_LIBRARY=build/{SONAME} in a source tree). "
        f"Tried: {'; '.join(tried)}"
    )


lib, LIBRARY = _load()
for _f in FUNCTIONS:
    try:
        getattr(lib, _f)
    except AttributeError as e:
        raise ImportError(f"shmrpc: {LIBRARY} has no {_f}: older than this package") from e


class Error(OSError):
    """Base of every error libshmrpc reports: an OSError whose errno is the
    library's, whose strerror is shmrpc_last_error()'s text. Each errno has
    a subclass that also derives from the built-in class Python maps that
    errno to (BrokenPipeError for EPIPE, TimeoutError for ETIMEDOUT, ...)."""

    def __reduce__(self):  # the subclasses are made at run time: pickle by errno
        return _rebuild, (self.errno, self.strerror)


_classes = {}
_tls = threading.local()  # per thread: mark, text (see error())


def _class_for(err):
    cls = _classes.get(err)
    if cls is None:
        builtin = type(OSError(err, ""))  # what Python maps this errno to
        if builtin is OSError:
            cls = Error
        else:
            cls = type(builtin.__name__, (Error, builtin), {"__module__": "shmrpc"})
        _classes[err] = cls
    return cls


def _rebuild(err, text):
    return _class_for(err)(err, text)


def make_error(err, text):
    """The exception for errno err with that text."""
    _tls.text = text
    return _class_for(err)(err, text)


# shmrpc_last_error() keeps the text of this thread's last failed call that
# recorded one, and not every call records one (some return without it):
# after a failure the text could be an older failure's. So once a failure's
# text is taken, the binding sets the thread's text to a known one, its
# mark, with a call that fails at once and does nothing else; a later
# failure that leaves the mark in place recorded nothing of its own.
def _mark():
    lib.shmrpc_open(ffi.NULL, ffi.NULL, ffi.NULL)  # -EINVAL: "out is NULL"
    _tls.mark = ffi.string(lib.shmrpc_last_error())


def error(rc, what=None):
    """The exception for a call that returned -errno rc: the library's text
    for it, else (none, or only "shmrpc_call: strerror") "what: strerror".
    Call it before any other call of libshmrpc in this thread."""
    err = -rc
    raw = ffi.string(lib.shmrpc_last_error())
    generic = os.strerror(err)
    text = raw.decode("utf-8", "replace")
    if not raw or raw == getattr(_tls, "mark", None):
        text = f"{what}: {generic}" if what else generic
    elif what and re.fullmatch(r"shmrpc_\w+: " + re.escape(generic), text):
        text = f"{what}: {generic}"  # the library's says no more than the call's name
    _mark()
    _tls.text = text
    return make_error(err, text)


def check(rc, what=None):
    if rc < 0:
        raise error(rc, what)
    return rc


class NodeClosed(ValueError):
    """The node was closed (before or during the call)."""


def timeout_ms(timeout):
    """Seconds (None: forever, 0: never block) to the C timeout_ms: rounded
    up to whole milliseconds (0.0001 waits 1 ms, not 0), capped at INT_MAX
    (24.8 days) so nothing overflows."""
    if timeout is None:
        return -1
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if timeout != timeout:
        raise ValueError("timeout is NaN")
    if timeout < 0:
        raise ValueError(f"timeout {timeout}: negative (None waits forever)")
    if math.isinf(timeout):
        return -1
    if timeout == 0:
        return 0
    if timeout >= INT_MAX / 1000:
        return INT_MAX
    us = max(1, round(timeout * 1_000_000))  # to integers before rounding up
    return min(INT_MAX, -(-us // 1000))


def cname(name, what="name"):
    """A node or domain name as the bytes C wants (NUL-terminated by cffi)."""
    if isinstance(name, str):
        b = name.encode("utf-8", "surrogateescape")
    elif isinstance(name, bytes):
        b = name
    else:
        raise TypeError(f"{what} must be str, not {type(name).__name__}")
    if b"\0" in b:
        raise ValueError(f"{what} {name!r}: embedded NUL")
    return b


_names = {}


def pystr(cstr):
    """A name from the library (possibly read from shared memory): never
    raises on odd bytes. The few names a process meets are decoded once."""
    b = ffi.string(cstr)
    s = _names.get(b)
    if s is None:
        s = b.decode("ascii", "replace")
        if len(_names) < 4096:
            _names[b] = s
    return s


Error.__module__ = NodeClosed.__module__ = "shmrpc"
