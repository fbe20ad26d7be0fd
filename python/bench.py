# SPDX-License-Identifier: MIT
"""The Python row of `make bench`: a 64-byte round trip between two Python
processes through the shmrpc package, next to the same over a Unix
SOCK_SEQPACKET socket pair, measured in the same run (blocks of each,
interleaved, so all see the same machine): shmrpc with the default
adaptive spin and with spin_us=0 (the receiver sleeps at once). Prints
medians and p99 of the round trip; --json FILE writes them too.

    SHMRPC_LIBRARY=build/libshmrpc.so.0 PYTHONPATH=python python3 python/bench.py
"""
import argparse
import ctypes
import json
import os
import socket
import statistics
import subprocess
import sys
import time


def echo_shmrpc(domain, size, spin):
    import shmrpc

    with shmrpc.Node("echo", domain=domain, spin_us=spin) as n:
        print("ready", flush=True)
        buf_size = max(size, 64)
        while True:
            data, sender = n.recv(bufsize=buf_size)
            if data == b"quit":
                return
            n.send(sender, data)


def echo_socket(fd):
    s = socket.socket(fileno=fd)
    print("ready", flush=True)
    while True:
        data = s.recv(65536)
        if not data or data == b"quit":
            return
        s.send(data)


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


# The rows: label, and for shmrpc the spin_us of both nodes (None: the
# library's default, adaptive up to 20 us; 0: never spin, sleep at once).
ROWS = (("shmrpc", "python shmrpc, default spin", None),
        ("shmrpc_nospin", "python shmrpc, spin_us=0", 0),
        ("unix_seqpacket", "python unix SOCK_SEQPACKET", None))


def pin(cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def run(args):
    import shmrpc

    cpus = sorted(os.sched_getaffinity(0))
    side0, side1 = (cpus[0], cpus[1]) if args.pin and len(cpus) >= 2 else (None, None)
    pin(side0)
    here = os.path.abspath(__file__)
    peers, rounds, closers, backend = [], {}, [], None
    msg = b"p" * args.size
    clock = time.perf_counter_ns
    for key, _, spin in ROWS:
        if key == "unix_seqpacket":
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            peers.append(subprocess.Popen([sys.executable, here, "--pin", str(side1),
                                           "--echo-socket", str(b.fileno())],
                                          stdout=subprocess.PIPE, text=True,
                                          pass_fds=[b.fileno()]))
            b.close()

            def once(a=a):
                t = clock()
                a.send(msg)
                a.recv(65536)
                return clock() - t

            closers.append(lambda a=a: (a.send(b"quit"), a.close()))
        else:
            domain = f"bench-py-{os.getpid()}-{key}"
            peers.append(subprocess.Popen([sys.executable, here, "--pin", str(side1),
                                           "--echo-shmrpc", domain,
                                           str(args.size), str(spin)],
                                          stdout=subprocess.PIPE, text=True))
            n = shmrpc.Node("main", domain=domain, spin_us=spin)
            backend = n.backend

            def once(n=n):
                t = clock()
                n.send("echo", msg)
                n.recv()
                return clock() - t

            closers.append(lambda n=n: (n.send("echo", b"quit"), n.close()))
        assert peers[-1].stdout.readline() == "ready\n", "a bench peer did not start"
        if key != "unix_seqpacket":
            n.wait_node("echo", timeout=10)
        rounds[key] = once
    rt = {key: [] for key in rounds}
    try:
        for once in rounds.values():
            for _ in range(args.warmup):
                once()
        for _ in range(args.blocks):  # interleaved: each sees the same machine
            for key, once in rounds.items():
                rt[key] += [once() for _ in range(args.iters)]
    finally:
        for close in closers:
            close()
        for p in peers:
            p.wait(10)
            p.stdout.close()
    return backend, rt, side0, side1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=64, help="message bytes (64)")
    ap.add_argument("--iters", type=int, default=5000, help="round trips per block (5000)")
    ap.add_argument("--blocks", type=int, default=6, help="blocks of each, interleaved (6)")
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="a smoke run")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="do not pin the two sides to two CPUs (as shmrpc-bench does)")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--echo-shmrpc", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--echo-socket", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--pin", dest="cpu", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.echo_shmrpc or args.echo_socket is not None:
        ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: die with the bench
    if args.cpu not in (None, "None"):
        pin(int(args.cpu))
    if args.echo_shmrpc:
        d, size, spin = args.echo_shmrpc
        return echo_shmrpc(d, int(size), None if spin == "None" else int(spin))
    if args.echo_socket is not None:
        return echo_socket(args.echo_socket)
    if args.quick:
        args.iters, args.blocks, args.warmup = 500, 2, 100
    backend, rt, side0, side1 = run(args)
    rows = {}
    for name, xs in rt.items():
        rows[name] = {"round_trips": len(xs), "median_us": statistics.median(xs) / 1000,
                      "p99_us": percentile(xs, 0.99) / 1000}
    base = rows["unix_seqpacket"]
    where = f"pinned to CPUs {side0} and {side1}" if side0 is not None else "not pinned"
    print(f"\n== Python {sys.version.split()[0]}: {args.size} B round trip between two "
          f"processes, {where} (backend {backend}, {args.blocks} interleaved blocks)")
    print(f"{'transport':<28} {'round trips':>11} {'median us':>10} {'p99 us':>9} "
          f"{'median vs socket':>17}")
    for key, label, _ in ROWS:
        r = rows[key]
        print(f"{label:<28} {r['round_trips']:>11} {r['median_us']:>10.1f} "
              f"{r['p99_us']:>9.1f} {r['median_us'] / base['median_us']:>16.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": args.size, "backend": backend, "python": sys.version.split()[0],
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
