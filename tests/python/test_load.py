# SPDX-License-Identifier: MIT
"""Finding libshmrpc.so.0: $SHMRPC_LIBRARY, else the dynamic loader, else
where `make install` put it; an ImportError that says what to do."""
import os
import subprocess
import sys


def import_in_child(env_changes):
    env = dict(os.environ)
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return subprocess.run([sys.executable, "-c", "import shmrpc; print(shmrpc.LIBRARY)"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_explicit_path_is_used():
    r = import_in_child({})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == os.environ["SHMRPC_LIBRARY"]


def test_explicit_path_missing_fails_without_fallback():
    r = import_in_child({"SHMRPC_LIBRARY": "/nonexistent/libshmrpc.so.0"})
    assert r.returncode != 0
    assert "ImportError: shmrpc: SHMRPC_LIBRARY=/nonexistent/libshmrpc.so.0" in r.stderr


def test_not_a_libshmrpc():
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    if not os.path.exists(libc):
        libc = "libc.so.6"
    r = import_in_child({"SHMRPC_LIBRARY": libc})
    assert r.returncode != 0
    assert "has no shmrpc_" in r.stderr and "older than this package" in r.stderr


def test_search_without_the_variable():
    r = import_in_child({"SHMRPC_LIBRARY": None, "LD_LIBRARY_PATH": None})
    if r.returncode == 0:  # an installed one (make install, a package) was found
        assert r.stdout.strip() != os.environ["SHMRPC_LIBRARY"]
    else:
        assert "libshmrpc.so.0 not found" in r.stderr and "SHMRPC_LIBRARY" in r.stderr
        assert "make install" in r.stderr
    r = import_in_child({"SHMRPC_LIBRARY": None,
                         "LD_LIBRARY_PATH": os.path.dirname(os.environ["SHMRPC_LIBRARY"])})
    assert r.returncode == 0 and r.stdout.strip() == "libshmrpc.so.0"  # the loader found it
