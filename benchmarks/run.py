"""``make bench``: credhelper's speed and memory beside git credential-cache, in the same run.

Prints tables; asserts nothing (these machines are noisy). Everything runs against the local
emulator in a throwaway HOME.
"""

import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from credhelper import protocol  # noqa: E402
from credhelper.emulator import Emulator  # noqa: E402
from harness import BIN, Workspace  # noqa: E402
from stats import median_ms, percentile, table, time_runs  # noqa: E402


def bench_git_fill(ws: Workspace, runs: int = 30) -> None:
    """`git credential fill` through our helper vs through git credential-cache."""
    host = ws.em.feed_base.split("//", 1)[1]
    query = f"protocol=https\nhost={host}\npath=git/demo.git\n\n"
    cache_sock = ws.root / "cc" / "sock"
    cache = ["git", "-c", "credential.helper=", "-c", f"credential.helper=cache --socket={cache_sock}"]
    ws.run(cache + ["credential", "approve"],
           input=f"protocol=https\nhost={host}\nusername=u\npassword=p\n\n")
    entra = ["git", "-c", "credential.helper=", "-c", "credential.helper=entra",
             "-c", "credential.useHttpPath=true"]

    def fill(cmd: List[str]) -> Callable[[], None]:
        return lambda: ws.run(cmd + ["credential", "fill"], input=query)

    ours = time_runs(fill(entra), runs)
    theirs = time_runs(fill(cache), runs)
    ws.run(["git", "credential-cache", f"--socket={cache_sock}", "exit"], check=False)
    table(f"`git credential fill`, whole process, median of {runs}",
          ["helper", "median ms", "p90 ms"],
          [["credhelper (git-credential-entra)", f"{median_ms(ours):.1f}", f"{percentile(ours, 90):.1f}"],
           ["git credential-cache", f"{median_ms(theirs):.1f}", f"{percentile(theirs, 90):.1f}"],
           ["ratio", f"{median_ms(ours) / median_ms(theirs):.2f}x", ""]])


def _get_once(path: str, request: bytes) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(request)
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(65536):
        pass
    sock.close()


def _client_process(path: str, request: bytes, threads: int, each: int,
                    barrier: Any, out: Any) -> None:
    """One load-generating process: ``threads`` threads of ``each`` gets, latencies to ``out``."""
    latencies: List[float] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = []
        for _ in range(each):
            start = time.perf_counter()
            _get_once(path, request)
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    barrier.wait()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put(latencies)


def bench_throughput(ws: Workspace, per_level: int = 4000, max_procs: int = 4) -> None:
    """Socket `get`s per second and latency at 1, 8 and 64 concurrent clients.

    Clients are spread over up to ``max_procs`` processes: threads of one Python process would
    fight each other for the GIL and measure the load generator, not the daemon.
    """
    path = str(ws.socket)
    request = protocol.encode({"v": 1, "op": "get", "url": ws.em.git_url("demo.git"), "for": "bench"})
    ctx = multiprocessing.get_context("fork")
    rows = []
    for clients in (1, 8, 64):
        procs = min(clients, max_procs)
        each = per_level // clients
        barrier = ctx.Barrier(procs + 1)
        out = ctx.Queue()
        workers = [ctx.Process(target=_client_process,
                               args=(path, request, clients // procs, each, barrier, out))
                   for _ in range(procs)]
        for w in workers:
            w.start()
        barrier.wait()
        start = time.perf_counter()
        latencies: List[float] = []
        for _ in workers:
            latencies.extend(out.get())
        elapsed = time.perf_counter() - start
        for w in workers:
            w.join()
        rows.append([clients, len(latencies), f"{len(latencies) / elapsed:,.0f}",
                     f"{percentile(latencies, 50):.2f}", f"{percentile(latencies, 99):.2f}"])
    table(f"daemon throughput (`get` over the socket; clients are threads spread over "
          f"min(clients, {max_procs}) processes)",
          ["clients", "requests", "get/s", "p50 ms", "p99 ms"], rows)


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_memory_and_start(ws: Workspace) -> None:
    """Daemon RSS after 10,000 gets, and `credhelper start` to ready."""
    path = str(ws.socket)
    request = protocol.encode({"v": 1, "op": "get", "url": ws.em.git_url("demo.git"), "for": "bench"})
    before = rss_mb(ws.daemon.pid)
    for _ in range(10_000):
        _get_once(path, request)
    after = rss_mb(ws.daemon.pid)
    ws.stop_daemon()
    env = dict(ws.env)
    env.pop("CREDHELPER_NO_AUTOSTART", None)
    starts = []
    for _ in range(5):
        begin = time.perf_counter()
        ws.run([str(BIN / "credhelper"), "start"], env=env)
        starts.append(time.perf_counter() - begin)
        ws.run([str(BIN / "credhelper"), "stop"], env=env)
    table("daemon memory and start-up", ["measure", "value"],
          [["RSS after start-up and first get", f"{before:.1f} MB"],
           ["RSS after 10,000 more gets", f"{after:.1f} MB"],
           ["`credhelper start` to ready, median of 5", f"{median_ms(starts):.0f} ms"]])


def main() -> int:
    """Run every benchmark against a fresh emulator."""
    with tempfile.TemporaryDirectory(prefix="credhelper-bench-") as tmp:
        root = Path(tmp)
        em = Emulator(root / "emulator")
        em.start()
        try:
            ws = Workspace(root / "ws", em)
            ws.default_config()
            ws.start_daemon()
            ws.client().get(em.git_url("demo.git"))  # warm the slot
            print(f"credhelper benchmarks — {time.strftime('%Y-%m-%d %H:%M')}, "
                  f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
            only = os.environ.get("CREDHELPER_BENCH_ONLY")
            if only == "throughput":  # a quick loop while tuning the daemon
                bench_throughput(ws)
                return 0
            bench_git_fill(ws)
            bench_throughput(ws)
            bench_memory_and_start(ws)
            from pip_bench import bench_keyring, bench_pip
            bench_keyring(ws)
            bench_pip(ws)
        finally:
            ws.stop_daemon()
            em.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
