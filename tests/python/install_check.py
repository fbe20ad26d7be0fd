# SPDX-License-Identifier: MIT
"""Run by scripts/install-check.sh with PYTHONPATH and LD_LIBRARY_PATH
pointing into a DESTDIR installation (argv[1]), SHMRPC_LIBRARY unset: the
package and the library must both come from there, and a Python process
must exchange with another one through them."""
import os
import subprocess
import sys

dest = os.path.realpath(sys.argv[1])
if len(sys.argv) > 2:  # the peer: echo one message back
    import shmrpc

    with shmrpc.Node("pong", domain=sys.argv[2]) as n:
        print("ready", flush=True)
        data, sender = n.recv(timeout=10)
        n.send(sender, data[::-1], timeout=10)
    sys.exit(0)

assert "SHMRPC_LIBRARY" not in os.environ
import shmrpc  # noqa: E402

where = os.path.realpath(shmrpc.__file__)
assert where.startswith(dest + "/"), f"package imported from {where}, not from {dest}"
with open("/proc/self/maps") as f:
    libs = {line.split()[-1] for line in f if "libshmrpc.so" in line}
assert libs and all(os.path.realpath(p).startswith(dest + "/") for p in libs), libs
from shmrpc import _config  # noqa: E402  written by make install

domain = f"install-check-{os.getpid()}"
with shmrpc.Node("ping", domain=domain) as n:
    peer = subprocess.Popen([sys.executable, __file__, dest, domain], stdout=subprocess.PIPE,
                            text=True)
    assert peer.stdout.readline() == "ready\n"
    n.wait_node("pong", timeout=10)
    n.send("pong", b"round trip", timeout=10)
    assert n.recv(timeout=10) == (b"pirt dnuor", "pong")
    assert peer.wait(10) == 0
    peer.stdout.close()
print(f"install-check: python ok ({where}, {sorted(libs)[0]}, LIBDIR {_config.LIBDIR}, "
      f"backend {n.backend})")
