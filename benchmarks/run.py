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
from typing import Any, Callable, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from credhelper import protocol  # noqa: E402
from credhelper.emulator import Emulator  # noqa: E402
from harness import BIN, Workspace, scale_routes  # noqa: E402
from stats import median_ms, percentile, table, time_interleaved, time_runs  # noqa: E402


def _ratio_rows(pairs: Sequence[Tuple[str, List[float], List[float]]], target: str
                ) -> List[List[str]]:
    rows = []
    for what, ours, theirs in pairs:
        rows.append([what, f"{median_ms(ours):.1f}", f"{median_ms(theirs):.1f}",
                     f"{median_ms(ours) / median_ms(theirs):.2f}x", target])
    return rows


def bench_git(ws: Workspace, runs: int = 60) -> None:
    """git credential fill/approve/reject through credhelper's set-up vs git credential-cache."""
    from credhelper import paths

    host = ws.em.feed_base.split("//", 1)[1]
    query = f"protocol=https\nhost={host}\npath=git/demo.git\n\n"
    token = ws.client().get(ws.em.git_url("demo.git"))["token"]
    stored = f"protocol=https\nhost={host}\npath=git/demo.git\nusername=workspace\npassword={token}\n\n"
    other = f"protocol=https\nhost={host}\npath=git/demo.git\nusername=x\npassword=not-ours\n\n"
    ws.credhelper("configure", "git")  # reset, cache --socket=<git socket>, the fallback
    configured = ws.git("config", "--global", "-z", "--get-all",
                        f"credential.{ws.em.feed_base}.helper").stdout.split("\0")[:-1]
    assert configured[0] == "" and configured[1].startswith("cache "), configured

    def helpers(values: List[str]) -> List[str]:
        cmd = ["git", "-c", "credential.useHttpPath=true"]
        for value in [""] + values:
            cmd += ["-c", f"credential.helper={value}"]
        return cmd

    ours = helpers(configured[1:])
    fallback = helpers(configured[-1:])
    shim = helpers(["entra"])  # the console script, as configure git set it before
    cache_sock = ws.root / "cc" / "sock"
    cache = helpers([f"cache --socket={cache_sock}"])
    ws.run(cache + ["credential", "approve"], input=stored)
    assert paths.git_cache_socket(ws.socket).exists()

    def run(cmd: List[str], action: str, stdin: str) -> Callable[[], object]:
        return lambda: ws.run(cmd + ["credential", action], input=stdin)

    # each pair in turns, so a machine busy with something else slows both alike
    fill_ours, fill_cache = time_interleaved(run(ours, "fill", query), run(cache, "fill", query), runs)
    store_ours, store_cache = time_interleaved(run(ours, "approve", stored),
                                               run(cache, "approve", stored), runs)
    # an erase of a password that is not ours: the daemon compares, drops nothing, stays warm
    erase_ours, erase_cache = time_interleaved(run(ours, "reject", other),
                                               run(cache, "reject", other), runs)
    fill_fallback, fill_cache2 = time_interleaved(run(fallback, "fill", query),
                                                  run(cache, "fill", query), runs)
    fill_shim, fill_cache3 = time_interleaved(run(shim, "fill", query), run(cache, "fill", query), runs)
    floor_script = Path(__file__).with_name("git_floor.py")
    floor = helpers([f"!{sys.executable} -I -S {floor_script}"])
    fill_floor, fill_cache4 = time_interleaved(run(floor, "fill", query), run(cache, "fill", query),
                                               runs)
    shell = time_runs(lambda: ws.run(["sh", "-c", "true"]), runs)
    bare, bare_cache = time_interleaved(lambda: ws.run([sys.executable, "-I", "-S", "-c", "pass"]),
                                        run(cache, "fill", query), runs)
    ws.run(["git", "credential-cache", f"--socket={cache_sock}", "exit"], check=False)
    table(f"git through credhelper vs `git credential-cache`, whole process, median of {runs}",
          ["git command", "credhelper ms", "credential-cache ms", "ratio", "target"],
          _ratio_rows([("`credential fill` (git socket, warm)", fill_ours, fill_cache),
                       ("`credential approve` (store after a fetch)", store_ours, store_cache),
                       ("`credential reject` (erase)", erase_ours, erase_cache)], "<= 1.5x")
          + _ratio_rows([("`credential fill`, fallback helper alone (python -I -S)",
                          fill_fallback, fill_cache2)], "<= 3.5x")
          + _ratio_rows([("`credential fill`, `entra` console script (reference)",
                          fill_shim, fill_cache3),
                         ("reference: the least a Python helper can do (`git_floor.py`: one "
                          "file, `_socket` and `posix`, no checks)", fill_floor, fill_cache4),
                         ("reference: `python -I -S -c pass` alone, no git", bare, bare_cache)], ""))
    print(f"\nOne `sh -c true` took {median_ms(shell):.1f} ms in the same run: git runs every "
          "helper through sh, and approve/reject run ours after the cache helper.")


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


def daemon_pid(ws: Workspace) -> int:
    """The pid of the daemon the workspace started (a benchmark that needs one started it)."""
    assert ws.daemon is not None, "no daemon running in this workspace"
    return ws.daemon.pid


def bench_memory_and_start(ws: Workspace) -> None:
    """Daemon RSS after 10,000 gets, and `credhelper start` to ready."""
    path = str(ws.socket)
    request = protocol.encode({"v": 1, "op": "get", "url": ws.em.git_url("demo.git"), "for": "bench"})
    before = rss_mb(daemon_pid(ws))
    for _ in range(10_000):
        _get_once(path, request)
    after = rss_mb(daemon_pid(ws))
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


def threads_of(pid: int) -> int:
    """Threads a process runs now."""
    return len(os.listdir(f"/proc/{pid}/task"))


def bench_stop(ws: Workspace, runs: int = 5) -> None:
    """From the stop request to the daemon process gone, and the whole `credhelper stop`."""
    gone, cli = [], []
    ws.stop_daemon()
    for _ in range(runs):
        daemon = ws.start_daemon()
        begin = time.perf_counter()
        ws.client().call("stop")
        daemon.wait(timeout=30)
        gone.append(time.perf_counter() - begin)
        daemon = ws.start_daemon()
        begin = time.perf_counter()
        ws.credhelper("stop")
        cli.append(time.perf_counter() - begin)
        daemon.wait(timeout=30)
    python = time_runs(lambda: ws.run([sys.executable, "-c", "import click"]), runs)
    table(f"stopping the daemon, median of {runs}", ["measure", "ms", "target"],
          [["stop request to the daemon process gone", f"{median_ms(gone):.0f}", "<= 300"],
           ["`credhelper stop`, whole command (returns when the process is gone)",
            f"{median_ms(cli):.0f}", ""],
           ["reference: `python -c 'import click'`", f"{median_ms(python):.0f}", ""]])


def _many_routes(ws: Workspace, accounts: int, routes: int) -> None:
    secret_env = "CREDHELPER_BENCH_SECRET"
    ws.env[secret_env] = ws.em.client_secret
    named = {f"svc{n}": {"authority": f"{ws.em.idp_base}/{ws.em.tenant}",
                         "client_id": "secret-app", "flow": "client_secret",
                         "client_secret_env": secret_env, "ca_bundle": str(ws.em.ca_file)}
             for n in range(accounts)}
    ws.write_config(named, scale_routes(ws.em.feed_base, accounts, routes))


def bench_scale(root: Path, em: Emulator) -> None:
    """10,000 routes at start-up; RSS with 20 accounts and 500 routes, every account warm."""
    from credhelper import config as config_mod
    from credhelper import fasttoml
    from credhelper.config import tomllib
    from credhelper.routing import Router, route_target

    rows = []
    ws = Workspace(root / "ws-10k", em)
    _many_routes(ws, 1, 10_000)
    loads = []
    for _ in range(3):
        route_target.cache_clear()  # cold, as in a starting daemon
        begin = time.perf_counter()
        Router(config_mod.load(ws.config_path).routes)
        loads.append(time.perf_counter() - begin)
    text = ws.config_path.read_text()
    parse_only = []
    fast_only = []
    for _ in range(3):
        begin = time.perf_counter()
        tomllib.loads(text)
        parse_only.append(time.perf_counter() - begin)
        begin = time.perf_counter()
        fasttoml.loads(text)
        fast_only.append(time.perf_counter() - begin)
    rows.append(["config load + router build, 10,000 routes, median of 3",
                 f"{median_ms(loads):.0f} ms", "<= 1,000 ms"])
    rows.append(["the TOML parse alone (fasttoml, what config.load uses) of the same file",
                 f"{median_ms(fast_only):.0f} ms", ""])
    rows.append(["reference: the TOML parse alone (tomllib) of the same file",
                 f"{median_ms(parse_only):.0f} ms", ""])
    starts = []
    for _ in range(3):
        begin = time.perf_counter()
        daemon = ws.start_daemon()
        starts.append(time.perf_counter() - begin)
        ws.stop_daemon()
    one = Workspace(root / "ws-1", em)
    _many_routes(one, 1, 1)
    starts_one = []
    for _ in range(3):
        begin = time.perf_counter()
        one.start_daemon()
        starts_one.append(time.perf_counter() - begin)
        one.stop_daemon()
    rows.append(["daemon start to first answer, 10,000 routes, median of 3",
                 f"{median_ms(starts):.0f} ms", ""])
    rows.append(["the same with 1 route (reference)", f"{median_ms(starts_one):.0f} ms", ""])

    ws = Workspace(root / "ws-20", em)
    _many_routes(ws, 20, 500)
    daemon = ws.start_daemon()
    client = ws.client()
    for n in range(20):  # one slot per account, each with its token
        client.get(f"{em.feed_base}/org{n}/repo.git", "bench")
    rows.append(["RSS, 20 accounts and 500 routes, every account's token held",
                 f"{rss_mb(daemon.pid):.1f} MB", "<= 50 MB"])
    ws.stop_daemon()
    table("daemon scale", ["measure", "value", "target"], rows)


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
            if only == "python":  # the Python tools alone (pip, uv, the keyring commands)
                from pip_bench import bench_keyring, bench_pip, bench_uv
                bench_keyring(ws)
                bench_pip(ws)
                bench_uv(ws)
                return 0
            if only == "npm":  # npm install through the daemon's npm block vs the open registry
                from npm_bench import bench_npm
                bench_npm(ws)
                return 0
            if only == "helpers":  # docker, cargo, Azure beside the git helper
                from helpers_bench import bench_helpers
                bench_helpers(ws)
                return 0
            if only == "git":
                bench_git(ws)
                return 0
            if only == "daemon":  # the rows issue 10 added for the daemon
                bench_scale(root, em)
                bench_stop(ws)
                return 0
            bench_git(ws)
            bench_throughput(ws)
            # workers started for the 64 clients end once idle (10 s)
            burst = threads_of(daemon_pid(ws))
            time.sleep(12)
            table("daemon threads", ["measure", "threads"],
                  [["right after the 64-client burst", burst],
                   ["12 s later (idle workers end after 10 s)", threads_of(daemon_pid(ws))]])
            bench_memory_and_start(ws)
            bench_scale(root, em)
            ws.default_config()
            bench_stop(ws)
            ws.start_daemon()
            from pip_bench import bench_keyring, bench_pip, bench_uv
            bench_keyring(ws)
            bench_pip(ws)
            bench_uv(ws)
            from npm_bench import bench_npm
            bench_npm(ws)
            from helpers_bench import bench_helpers
            bench_helpers(ws)
        finally:
            ws.stop_daemon()
            em.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
