"""Where trayproxy's time goes: the same load against `trayproxy serve` with pieces turned off.

    python -m bench.variants [--requests N] [--repeats N]

Runs the floor and trayproxy as shipped, then trayproxy without its history (``nohist``),
without its request log line (``nolog``), and without both and the routing record
(``bare``), and on uvloop's event loop when uvloop is installed (``uvloop``), each pinned
to its own core, and prints the proxy's CPU per request and its latency one request at a
time (medians).
The variants exist only here, to measure; trayproxy itself has no switch to skip them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import loadgen, run

VARIANTS = {
    "floor": "",
    "trayproxy": "",
    "nohist": "nohist",
    "nolog": "nolog",
    "bare": "nohist,nolog,norec",
}
try:  # and, where uvloop is installed, trayproxy on uvloop's event loop (it does not ship it)
    import uvloop  # noqa: F401

    VARIANTS["uvloop"] = "uvloop"
except ImportError:
    pass


def serve_variant(config: str, flags: set[str]) -> int:
    """`trayproxy serve` with the named pieces replaced by nothing (run in a child)."""
    import logging

    from trayproxy import cli
    from trayproxy.records import history, logbook

    if "uvloop" in flags:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if "nohist" in flags:
        history.History.add = lambda self, record: None  # type: ignore[method-assign]
    if "nolog" in flags:
        setup = cli.setup_logging

        def quiet(*args: object, **kwargs: object) -> None:
            setup(*args, **kwargs)  # type: ignore[arg-type]
            logging.getLogger("trayproxy.requests").setLevel(logging.WARNING)

        cli.setup_logging = quiet  # type: ignore[assignment]
    if "norec" in flags:

        class _Nothing:
            def log_line(self) -> str:
                return ""

        logbook.Logbook.add = lambda self, draft: _Nothing()  # type: ignore[assignment,method-assign,return-value]
    return cli.main(["serve", "--config", config])


LATENCY_REQUESTS = 2000


async def _measure(target: run.Target, count: int) -> tuple[float, float, float]:
    """(CPU µs per request at 16 connections, latency p50 and p99 in ms, one at a time)."""
    raw = loadgen.chat_request(target.port, run.CLIENT_MODEL)
    expected = "".join(loadgen.words(run.STREAM_CHUNKS))

    def ok(answer: loadgen.Answer) -> None:
        loadgen.check_json(answer, expected)

    await loadgen.closed_loop(target.port, raw, 500, 16, ok)
    assert target.proc is not None
    before = run.tree_cpu(target.proc.pid)
    await loadgen.closed_loop(target.port, raw, count, 16, ok)
    cpu = (run.tree_cpu(target.proc.pid) - before) / count * 1e6
    times = [
        a.total * 1000 for a in await loadgen.sequential(target.port, raw, LATENCY_REQUESTS, ok)
    ]
    return cpu, run.p(times, 0.5), run.p(times, 0.99)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.variants", description=__doc__)
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "FLAGS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve_variant(args.serve[0], set(filter(None, args.serve[1].split(","))))
    load_core, proxy_core = run.cores()
    if load_core is not None:
        os.sched_setaffinity(0, {load_core})
    work = Path(tempfile.mkdtemp(prefix="trayproxy-variants-"))
    mock = subprocess.Popen(
        [sys.executable, "-m", "bench.mock_upstream", "--chunks", str(run.STREAM_CHUNKS)],
        cwd=run.HERE.parent,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=run.pin(load_core),
        start_new_session=True,
    )
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in VARIANTS}
    try:
        mock_port = int(mock.stdout.readline())  # type: ignore[union-attr]
        for rep in range(args.repeats):
            for name, flags in VARIANTS.items():
                if name == "floor":
                    target = run.launch("floor", mock_port, work, proxy_core, None)
                else:
                    home = work / f"{name}-{rep}"
                    home.mkdir()
                    port = run.free_port()
                    config = home / "config.toml"
                    config.write_text(run.trayproxy_config(mock_port, port))
                    config.chmod(0o600)
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "bench.variants", "--serve", str(config), flags],
                        cwd=run.HERE.parent,
                        env=run.clean_env(home),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        preexec_fn=run.pin(proxy_core),
                        start_new_session=True,
                    )
                    target = run.Target(name, port, proc)
                try:
                    run.wait_serving(target, run.CLIENT_MODEL, 30)
                    results[name].append(asyncio.run(_measure(target, args.requests)))
                finally:
                    run.stop(target.proc)
    finally:
        run.stop(mock)
    print(
        f"proxy CPU per request ({args.requests} requests at 16 connections) and latency "
        f"({LATENCY_REQUESTS} one at a time), medians of {args.repeats}:"
    )
    floor = statistics.median(r[0] for r in results["floor"])
    for name, values in results.items():
        cpu = statistics.median(r[0] for r in values)
        p50 = statistics.median(r[1] for r in values)
        p99 = statistics.median(r[2] for r in values)
        print(
            f"  {name:10s} {cpu:7.0f} µs {cpu - floor:+6.0f} µs over the floor   "
            f"latency p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
