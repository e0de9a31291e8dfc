#!/usr/bin/python3
"""Per-operation latency of the RBD driver's calls: one `rbd` CLI process per
call (what Clinker's RBD driver does) against librbd on one long-lived
connection (what Cinder's RBDDriver does, through python3-rbd's C bindings).

    CEPH_DIR=/tmp/bench scripts/ceph-single-node.sh up
    scripts/bench-rbd-cli-vs-librbd.py --conf /tmp/bench/ceph.conf --id cinder --pool volumes
    CEPH_DIR=/tmp/bench scripts/ceph-single-node.sh down

or simply `scripts/bench-rbd.sh`, which does all three. Both sides run the
same sequence on the same cluster in the same run, interleaved round by
round; the report gives the median per operation and the CLI/librbd ratio.
Needs python3-rbd and python3-rados (installed with ceph-common).
"""

import argparse
import resource
import statistics
import subprocess
import time
import uuid

import rados
import rbd

GIB = 1 << 30
OPS = [
    "create",
    "info",
    "snap create",
    "snap protect",
    "clone",
    "resize",
    "children",
    "flatten",
    "snap unprotect",
    "snap rm",
    "rm clone",
    "rm",
    "ls",
    "ceph df",
    "ceph mon dump",
]


class Cli:
    name = "cli"

    def __init__(self, args):
        self.base = ["rbd", "--conf", args.conf, "--id", args.id, "--cluster", args.cluster]
        self.ceph_base = ["ceph", "--conf", args.conf, "--id", args.id, "--cluster", args.cluster]
        self.pool = args.pool

    cpu = {"rbd": [], "ceph": []}

    @staticmethod
    def spawn(tool, argv):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        Cli.cpu[tool].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)

    def run(self, *argv):
        self.spawn("rbd", self.base + list(argv))

    def ceph(self, *argv):
        self.spawn("ceph", self.ceph_base + list(argv))

    def sequence(self, name, clock):
        p = self.pool
        src, dst, snap = f"{p}/{name}", f"{p}/{name}-c", f"{p}/{name}@s"
        clock("create", self.run, "create", "--no-progress", "--size", "1024", src)
        clock("info", self.run, "info", "--format", "json", src)
        clock("snap create", self.run, "snap", "create", "--no-progress", snap)
        clock("snap protect", self.run, "snap", "protect", snap)
        clock("clone", self.run, "clone", snap, dst)
        clock("resize", self.run, "resize", "--no-progress", "--size", "2048", dst)
        clock("children", self.run, "children", "--format", "json", snap)
        clock("flatten", self.run, "flatten", "--no-progress", dst)
        clock("snap unprotect", self.run, "snap", "unprotect", snap)
        clock("snap rm", self.run, "snap", "rm", "--no-progress", snap)
        clock("rm clone", self.run, "rm", "--no-progress", dst)
        clock("rm", self.run, "rm", "--no-progress", src)
        clock("ls", self.run, "ls", "--format", "json", p)
        clock("ceph df", self.ceph, "df", "--format", "json")
        clock("ceph mon dump", self.ceph, "mon", "dump", "--format", "json")


class Lib:
    name = "librbd"

    def __init__(self, args):
        t0 = time.perf_counter()
        self.cluster = rados.Rados(conffile=args.conf, rados_id=args.id, clustername=args.cluster)
        self.cluster.connect()
        self.ioctx = self.cluster.open_ioctx(args.pool)
        self.connect_seconds = time.perf_counter() - t0
        self.rbd = rbd.RBD()

    def sequence(self, name, clock):
        io, r = self.ioctx, self.rbd
        child = f"{name}-c"

        def info():
            with rbd.Image(io, name, read_only=True) as img:
                img.stat()

        def snap_op(method, *a):
            def op():
                with rbd.Image(io, name) as img:
                    getattr(img, method)(*a)
            return op

        def child_op(method, *a):
            def op():
                with rbd.Image(io, child) as img:
                    getattr(img, method)(*a)
            return op

        def children():
            with rbd.Image(io, name, snapshot="s", read_only=True) as img:
                list(img.list_children())

        clock("create", r.create, io, name, GIB, old_format=False)
        clock("info", info)
        clock("snap create", snap_op("create_snap", "s"))
        clock("snap protect", snap_op("protect_snap", "s"))
        clock("clone", r.clone, io, name, "s", io, child)
        clock("resize", child_op("resize", 2 * GIB))
        clock("children", children)
        clock("flatten", child_op("flatten"))
        clock("snap unprotect", snap_op("unprotect_snap", "s"))
        clock("snap rm", snap_op("remove_snap", "s"))
        clock("rm clone", r.remove, io, child)
        clock("rm", r.remove, io, name)
        clock("ls", r.list, io)
        clock("ceph df", self.mon_command, '{"prefix": "df", "format": "json"}')
        clock("ceph mon dump", self.mon_command, '{"prefix": "mon dump", "format": "json"}')

    def mon_command(self, cmd):
        ret, _, err = self.cluster.mon_command(cmd, b"")
        if ret:
            raise RuntimeError(err)

    def close(self):
        self.ioctx.close()
        self.cluster.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conf", required=True)
    ap.add_argument("--id", default="cinder")
    ap.add_argument("--cluster", default="ceph")
    ap.add_argument("--pool", default="volumes")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()

    cli, lib = Cli(args), Lib(args)
    samples = {side: {op: [] for op in OPS} for side in ("cli", "librbd")}
    for round_ in range(args.rounds):
        # Interleave the two sides so cluster warm-up and noise hit both.
        for side in (cli, lib) if round_ % 2 == 0 else (lib, cli):
            def clock(op, fn, *a, **kw):
                t = time.perf_counter()
                fn(*a, **kw)
                samples[side.name][op].append(time.perf_counter() - t)
            side.sequence(f"bench-{side.name}-{uuid.uuid4().hex[:8]}", clock)
    lib.close()
    cpu_ms = {tool: statistics.median(v) * 1000 for tool, v in Cli.cpu.items()}

    def ms(v):
        return f"{v * 1000:8.1f}"

    print(f"rounds: {args.rounds}; librbd connect + open pool, paid once by the daemon: "
          f"{lib.connect_seconds * 1000:.1f} ms")
    print(f"CPU per process (median): rbd {cpu_ms['rbd']:.1f} ms, ceph {cpu_ms['ceph']:.1f} ms")
    print(f"{'operation':<16}{'cli ms':>9}{'librbd ms':>11}{'ratio':>8}")
    rbd_total = {"cli": 0.0, "librbd": 0.0}
    total = {"cli": 0.0, "librbd": 0.0}
    for op in OPS:
        c = statistics.median(samples["cli"][op])
        l = statistics.median(samples["librbd"][op])
        for t in (total,) if op.startswith("ceph") else (total, rbd_total):
            t["cli"] += c
            t["librbd"] += l
        print(f"{op:<16}{ms(c)} {ms(l):>10}{c / l:>8.1f}")
    for name, t in (("rbd sequence", rbd_total), ("with ceph calls", total)):
        print(f"{name:<16}{ms(t['cli'])} {ms(t['librbd']):>10}{t['cli'] / t['librbd']:>8.1f}")


if __name__ == "__main__":
    main()
