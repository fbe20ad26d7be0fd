# SPDX-License-Identifier: MIT
"""Print the directory where `make install` puts the shmrpc package for
PREFIX (argv[1]) so that this Python finds it: on Debian /usr ->
/usr/lib/python3/dist-packages, /usr/local ->
/usr/local/lib/python3.X/dist-packages (the schemes Debian's python3 adds);
elsewhere PREFIX/lib/python3.X/site-packages. Says so on stderr when the
result is not on this Python's sys.path (PYTHONPATH is then needed)."""
import sys
import sysconfig

prefix = sys.argv[1].rstrip("/") or "/"
schemes = sysconfig.get_scheme_names()
if prefix == "/usr" and "deb_system" in schemes:
    path = sysconfig.get_path("purelib", "deb_system", {"base": "/usr"})
elif prefix == "/usr/local" and "posix_local" in schemes:
    path = sysconfig.get_path("purelib", "posix_local", {"base": "/usr"})
else:
    path = sysconfig.get_path("purelib", "posix_prefix", {"base": prefix, "platbase": prefix})
if path not in sys.path:
    print(f"note: {path} is not on {sys.executable}'s sys.path: use PYTHONPATH", file=sys.stderr)
print(path)
