# SPDX-License-Identifier: MIT
"""Zero-copy receive (peek) and send (reserve) as context managers."""
import errno
import gc
import struct

import pytest

import shmrpc


def test_peek_view(pair):
    a, b = pair
    a.send("b", b"zero-copy")
    with b.peek(timeout=1) as (view, sender):
        assert isinstance(view, memoryview) and view.readonly
        assert view == b"zero-copy" and sender == "a"
        assert bytes(view[5:]) == b"copy"  # a temporary slice is fine
        with pytest.raises(TypeError):
            view[0] = 0  # read-only: the ring is the sender's to write
    with pytest.raises(ValueError):
        view[0]  # released: raises instead of reading the ring
    with pytest.raises(BlockingIOError):
        b.recv(0)  # and the message was consumed


def test_peek_inner_peek_is_busy(pair):
    a, b = pair
    a.send("b", b"x")
    with b.peek(1):
        with pytest.raises(OSError) as e:
            with b.peek(0):
                pass
        assert e.value.errno == errno.EBUSY


def test_peek_exception_in_block_still_releases(pair):
    a, b = pair
    a.send("b", b"one")
    a.send("b", b"two")
    with pytest.raises(KeyError):
        with b.peek(1) as (view, _):
            raise KeyError(bytes(view))
    assert b.recv(0) == (b"two", "a")


def test_peek_timeouts(pair):
    a, b = pair
    with pytest.raises(BlockingIOError):
        with b.peek(0):
            pass
    with pytest.raises(TimeoutError):
        with b.peek(0.01):
            pass
    a.send("b", b"after")  # the token was given back on failure
    assert b.recv(1) == (b"after", "a")


def test_peek_slice_outliving_the_block(pair):
    """A slice kept past the block: BufferError, the message is not released
    (its memory is not reused under the slice) until the slice is gone."""
    a, b = pair
    a.send("b", b"first")
    a.send("b", b"second")
    with pytest.raises(BufferError):
        with b.peek(1) as (view, _):
            kept = view[1:3]
    assert bytes(kept) == b"ir"  # still the message: not released, not reused
    with pytest.raises(BufferError):
        b.recv(0)
    with pytest.raises(BufferError):
        b.close()  # closing would unmap the ring under it
    del kept
    assert b.recv(0) == (b"second", "a")  # released on the way in


def test_peek_export_outliving_the_block(pair):
    a, b = pair
    a.send("b", b"exported")
    with pytest.raises(BufferError):
        with b.peek(1) as (view, _):
            exp = shmrpc.ffi.from_buffer(view)  # an export of the view itself
    assert shmrpc.ffi.buffer(exp)[:] == b"exported"
    del exp
    gc.collect()
    with pytest.raises(BlockingIOError):
        b.recv(0)


def test_peeked_views_keep_the_node_alive(domain):
    with shmrpc.Node("a", domain=domain) as a:
        b = shmrpc.Node("b", domain=domain)
        a.send("b", b"kept")
        with pytest.raises(BufferError):
            with b.peek(1) as (view, _):
                kept = view[:]
        del b, view
        gc.collect()
        assert a.is_local("b")  # not collected, not closed under the slice
        assert bytes(kept) == b"kept"
        del kept
        gc.collect()
        assert not a.is_local("b")


def test_reserve_commit(pair):
    a, b = pair
    with a.reserve("b", 16, timeout=1) as buf:
        assert len(buf) == 16 and isinstance(buf, shmrpc.TxBuffer)
        buf[:5] = b"hello"
        struct.pack_into("<I", buf.view, 5, 0xdeadbeef)
        assert buf[0:5] == b"hello" and type(buf[0:5]) is bytes
        assert buf[0] == ord("h")
        buf.length = 9
    assert b.recv(1) == (b"hello" + struct.pack("<I", 0xdeadbeef), "a")
    with a.reserve("b", 3) as buf:
        buf[:] = b"all"  # length defaults to everything reserved
    assert b.recv(1) == (b"all", "a")
    with a.reserve("b", 0):
        pass
    assert b.recv(1) == (b"", "a")


def test_reserve_length_checked(pair):
    a, b = pair
    with a.reserve("b", 4) as buf:
        with pytest.raises(ValueError):
            buf.length = 5
        with pytest.raises(ValueError):
            buf.length = -1
        with pytest.raises(TypeError):
            buf.length = 1.0
        buf[:] = b"abcd"
    assert b.recv(1) == (b"abcd", "a")


def test_reserve_cancel(pair):
    a, b = pair
    with pytest.raises(RuntimeError):
        with a.reserve("b", 8) as buf:
            buf[:3] = b"bad"
            raise RuntimeError("cancel it")
    with a.reserve("b", 8) as buf:
        buf.cancel()
    with pytest.raises(BlockingIOError):
        b.recv(0)
    a.send("b", b"next")  # the reservation ended: sends to b go on
    assert b.recv(1) == (b"next", "a")


def test_reserve_view_released_and_slices_refused(pair):
    a, b = pair
    with a.reserve("b", 4) as buf:
        buf[:] = b"abcd"
        view = buf.view
    with pytest.raises(ValueError):
        view[0] = 1  # released: no write into the ring after the commit
    assert b.recv(1) == (b"abcd", "a")
    with pytest.raises(BufferError):
        with a.reserve("b", 4) as buf:
            kept = buf.view[1:]
    del kept
    with pytest.raises(BlockingIOError):
        b.recv(0)  # cancelled: nothing published


def test_reserve_errors(pair):
    a, b = pair
    with pytest.raises(FileNotFoundError):
        with a.reserve("nobody", 4):
            pass
    with pytest.raises(OSError) as e:
        with a.reserve("b", 1 << 20):
            pass
    assert e.value.errno == errno.EMSGSIZE
    with pytest.raises(ValueError):
        a.reserve("b", -1)
    with pytest.raises(TypeError):
        a.reserve("b", 1.5)


def test_reserve_defer(pair):
    a, b = pair
    with a.reserve("b", 2, defer=True) as buf:
        buf[:] = b"df"
    a.flush()
    assert b.recv(1) == (b"df", "a")


def test_close_inside_blocks_refused(pair):
    a, b = pair
    a.send("b", b"x")
    with b.peek(1):
        with pytest.raises(RuntimeError):
            b.close()
    with a.reserve("b", 1) as buf:
        buf[:] = b"y"
        with pytest.raises(RuntimeError):
            a.close()
    assert b.recv(1) == (b"y", "a")
