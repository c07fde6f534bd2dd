"""Side-by-side benchmark: direct, the aiohttp floor, trayproxy (and LiteLLM's proxy).

    python -m bench [--quick] [--repeats N] [--litellm PATH] [--tray] [--json FILE]

One mock provider (bench/mock_upstream.py) answers everything. Each proxy runs in its own
process pinned to its own core (the load generator and the mock share the other), is started
fresh for every repeat, and is measured the same way: start-up to serving, RSS idle and after
load, latency (sequential), throughput at 16 and 64 connections, the proxy's own CPU time per
request and per stream (its whole process tree, from /proc), time to first event of a paced
stream, and 1 MiB / 4 MiB bodies checked end to end. The table shows medians over the repeats
and the ratios that matter. Linux only (/proc, CPU affinity); talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import loadgen
from bench.mock_upstream import words

CLIENT_MODEL = "nvidia/kimi-k2-thinking"
UPSTREAM_MODEL = "moonshotai/kimi-k2-thinking"
PACED_MODEL = "bench/paced"
# the Responses API rows: ids that LiteLLM sends through its Responses → Chat Completions
# bridge (an openai/ model would go to the mock's /responses, which it does not serve)
RESPONSES_MODEL, RESPONSES_PACED = "bench/responses", "bench/responses-paced"
STREAM_CHUNKS = 100
PACED_CHUNKS = 50
PACE_S = 0.001
HERE = Path(__file__).resolve().parent
LITELLM_DEFAULT = HERE / ".venv-litellm" / "bin" / "litellm"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sizes:
    warmup: int
    latency: int
    throughput: int
    streams: int
    paced: int
    big1: int
    big4: int


FULL = Sizes(warmup=600, latency=2000, throughput=4000, streams=300, paced=50, big1=20, big4=10)
QUICK = Sizes(warmup=100, latency=300, throughput=600, streams=40, paced=10, big1=4, big4=2)
# LiteLLM answers ~50 requests/s here: fewer of each, so that a run stays within minutes
SLOW = Sizes(warmup=50, latency=300, throughput=600, streams=30, paced=10, big1=5, big4=3)
SLOW_QUICK = Sizes(warmup=20, latency=60, throughput=120, streams=8, paced=4, big1=2, big4=1)


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:  # the process ended meanwhile
        return ""


def tree_cpu(pid: int) -> float:
    """CPU seconds used by ``pid`` and every process below it.

    Read from each thread's ``schedstat`` (nanoseconds), so that a few requests of several
    milliseconds each are measured to the microsecond; ``stat`` counts in clock ticks
    (10 ms), the fallback where the kernel has no schedstat.
    """
    total = 0.0
    for p in _tree(pid):
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:  # the process ended meanwhile
            continue
        precise = 0
        for tid in tasks:
            line = _read(f"/proc/{p}/task/{tid}/schedstat")
            if not line:
                precise = -1
                break
            precise += int(line.split()[0])
        if precise >= 0:
            total += precise / 1e9
            continue
        stat = _read(f"/proc/{p}/stat")
        if stat:
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def tree_rss_mib(pid: int) -> float:
    total = 0.0
    for p in _tree(pid):
        for line in _read(f"/proc/{p}/status").splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def pin(core: int | None) -> Callable[[], None] | None:
    if core is None:
        return None
    return lambda: os.sched_setaffinity(0, {core})


def cores() -> tuple[int | None, int | None]:
    """(core for the load generator and mock, core for the proxy), when there are two."""
    have = sorted(os.sched_getaffinity(0))
    if len(have) < 2:
        return None, None
    return have[0], have[-1]


LITELLM_KEY = "sk-bench-master-0123456789abcdef"
# the targets that take Anthropic Messages and the Responses API and translate them to the
# mock's Chat Completions
TRANSLATING_TARGETS = ("trayproxy", "litellm")


@dataclass
class Target:
    name: str
    port: int
    proc: subprocess.Popen | None = None
    path: str = "/v1"
    key: str = "bench"


def wait_serving(t: Target, model: str, timeout: float) -> float:
    """Seconds until a chat request through the target is answered 200."""
    port, proc = t.port, t.proc
    raw = loadgen.chat_request(port, model, key=t.key)
    start = time.perf_counter()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process exited with {proc.returncode} before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(raw)
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"nothing served on port {port} within {timeout:g} s")


def precompile() -> None:
    """Write the bytecode of the proxies' modules, as an installed package has it.

    Python reads cached bytecode even under PYTHONDONTWRITEBYTECODE (set on some machines,
    the one this project is developed on included): without this, every trayproxy start
    would compile its 40 modules from source (about 0.15 s) and the start-up figure would
    measure that.
    """
    for package in ("trayproxy", "bench"):
        compileall.compile_dir(str(HERE.parent / package), quiet=1)


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def clean_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.lower().endswith("_proxy") and not k.startswith("TRAYPROXY_")
    }
    env["TRAYPROXY_HOME"] = str(home)
    env["NO_PROXY"] = "*"
    return env


def trayproxy_config(mock: int, port: int) -> str:
    return f"""
[server]
host = "127.0.0.1"
port = {port}

[providers.nvidia]
base_url = "http://127.0.0.1:{mock}/v1"
api_key = "nvapi-bench-0123456789abcdefghij"
profile = "nvidia"

[models."{CLIENT_MODEL}"]
provider = "nvidia"
model = "{UPSTREAM_MODEL}"
max_output_tokens = 16384
capabilities = ["tool_use", "reasoning"]

[models."{PACED_MODEL}"]
provider = "nvidia"
model = "paced-model"

[models."{RESPONSES_MODEL}"]
provider = "nvidia"
model = "{UPSTREAM_MODEL}"

[models."{RESPONSES_PACED}"]
provider = "nvidia"
model = "paced-model"
"""


def litellm_config(mock: int) -> str:
    entries = []
    for client, upstream in (
        (CLIENT_MODEL, f"openai/{UPSTREAM_MODEL}"),
        (PACED_MODEL, "openai/paced-model"),
        (RESPONSES_MODEL, f"nvidia_nim/{UPSTREAM_MODEL}"),
        (RESPONSES_PACED, "nvidia_nim/paced-model"),
    ):
        entries.append(
            f"  - model_name: {client}\n    litellm_params:\n"
            f"      model: {upstream}\n"
            f"      api_base: http://127.0.0.1:{mock}/v1\n      api_key: sk-bench\n"
        )
    return (
        "model_list:\n"
        + "".join(entries)
        # /v1/messages to an openai/ model goes to the Responses API unless told otherwise;
        # the mock (like most providers) serves Chat Completions
        + "litellm_settings:\n  telemetry: false\n"
        + "  use_chat_completions_url_for_anthropic_messages: true\n"
        + f"general_settings:\n  master_key: {LITELLM_KEY}\n"
    )


def launch(name: str, mock: int, work: Path, core: int | None, litellm: Path | None) -> Target:
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=name + "-", dir=work))  # fresh: no earlier history
    env = clean_env(home)
    if name == "direct":
        return Target(name, mock)
    if name == "floor":
        cmd = [sys.executable, "-m", "bench.floor", "--upstream", f"http://127.0.0.1:{mock}"]
        cmd += ["--port", str(port)]
    elif name == "trayproxy":
        cfg = home / "config.toml"
        cfg.write_text(trayproxy_config(mock, port))
        cfg.chmod(0o600)
        cmd = [sys.executable, "-m", "trayproxy", "serve", "--config", str(cfg)]
    elif name == "litellm":
        assert litellm is not None
        cfg = home / "litellm.yaml"
        cfg.write_text(litellm_config(mock))
        env.update(
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_TELEMETRY="False",
            LITELLM_LOG="ERROR",
            DISABLE_SCHEMA_UPDATE="True",
        )
        cmd = [str(litellm), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--num_workers", "1"]
    else:
        raise ValueError(name)
    proc = subprocess.Popen(
        cmd,
        cwd=HERE.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(home / "stderr.log", "ab"),  # noqa: SIM115
        preexec_fn=pin(core),
        start_new_session=True,
    )
    return Target(name, port, proc, key=LITELLM_KEY if name == "litellm" else "bench")


# ---------------------------------------------------------------- one run of one target


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(t: Target, sizes: Sizes) -> dict[str, float]:
    port, path = t.port, t.path
    pid = t.proc.pid if t.proc else None
    key = t.key
    plain = loadgen.chat_request(port, CLIENT_MODEL, path=path, key=key)
    expected = "".join(words(STREAM_CHUNKS))

    def ok(answer: loadgen.Answer) -> None:
        loadgen.check_json(answer, expected)

    def cpu() -> float:
        return tree_cpu(pid) if pid else float("nan")

    out: dict[str, float] = {}
    await asyncio.sleep(1.0)
    if pid:
        out["rss_idle_mib"] = tree_rss_mib(pid)
    await loadgen.sequential(port, plain, sizes.warmup, ok)
    # and the connections the throughput runs will hold, so that the growth measured below
    # is what requests leave behind, not the pools they fill once
    await loadgen.closed_loop(port, plain, 4 * 64, 64, ok)
    rss_warm = tree_rss_mib(pid) if pid else 0.0
    requests = 0

    before = cpu()
    lat = await loadgen.sequential(port, plain, sizes.latency, ok)
    cpu_one = (cpu() - before) / sizes.latency  # one request at a time
    out["cpu_seq_req_us"] = cpu_one * 1e6
    out["lat_p50_ms"] = p([a.total for a in lat], 0.5) * 1000
    out["lat_p99_ms"] = p([a.total for a in lat], 0.99) * 1000
    requests += sizes.latency

    cpu_used = 0.0
    for conc in (16, 64):
        before = cpu()
        wall = await loadgen.closed_loop(port, plain, sizes.throughput, conc, ok)
        cpu_used += cpu() - before
        out[f"rps_{conc}"] = sizes.throughput / wall
        requests += sizes.throughput
    out["cpu_req_us"] = cpu_used / (2 * sizes.throughput) * 1e6
    if pid:
        out["rss_growth_mib"] = tree_rss_mib(pid) - rss_warm
        out["requests"] = requests

    stream = loadgen.chat_request(port, CLIENT_MODEL, stream=True, path=path, key=key)
    before = cpu()
    answers = await loadgen.sequential(
        port, stream, sizes.streams, lambda a: loadgen.check_stream(a, STREAM_CHUNKS)
    )
    out["cpu_stream_us"] = (cpu() - before) / sizes.streams * 1e6
    out["stream_ms"] = p([a.total for a in answers], 0.5) * 1000
    requests += sizes.streams

    paced = loadgen.chat_request(port, PACED_MODEL, stream=True, path=path, key=key)
    before = cpu()
    answers = await loadgen.sequential(
        port, paced, sizes.paced, lambda a: loadgen.check_stream(a, PACED_CHUNKS)
    )
    # events arrive one by one here: what a stream costs beyond a request, per event
    per_stream = (cpu() - before) / sizes.paced
    out["cpu_chunk_us"] = (per_stream - cpu_one) / (PACED_CHUNKS + 4) * 1e6
    out["ttfb_ms"] = p([a.first_event for a in answers], 0.5) * 1000
    out["ttfc_ms"] = p([a.first_content for a in answers], 0.5) * 1000
    out["paced_reads"] = min(a.reads for a in answers)  # one read per event: not buffered
    requests += sizes.paced

    if t.name in TRANSLATING_TARGETS:  # Messages and Responses in, Chat Completions to the mock
        protocols = (
            ("msg", loadgen.messages_request, CLIENT_MODEL, PACED_MODEL),
            ("resp", loadgen.responses_request, RESPONSES_MODEL, RESPONSES_PACED),
        )
        checks = {
            "msg": (loadgen.check_message, loadgen.check_messages_stream),
            "resp": (loadgen.check_response, loadgen.check_responses_stream),
        }
        for name, request, model, paced_model in protocols:
            whole, streamed = checks[name]
            raw = request(port, model, key=key)
            before = cpu()
            await loadgen.sequential(port, raw, sizes.latency, lambda a, c=whole: c(a, expected))
            one = (cpu() - before) / sizes.latency
            out[f"cpu_{name}_req_us"] = one * 1e6
            raw = request(port, paced_model, stream=True, key=key)
            before = cpu()
            await loadgen.sequential(
                port, raw, sizes.paced, lambda a, c=streamed: c(a, PACED_CHUNKS)
            )
            per_stream = (cpu() - before) / sizes.paced
            out[f"cpu_{name}_chunk_us"] = (per_stream - one) / (PACED_CHUNKS + 4) * 1e6
            requests += sizes.latency + sizes.paced

    for label, size, count in (("big1", 1 << 20, sizes.big1), ("big4", 4 << 20, sizes.big4)):
        raw, digest = loadgen.big_request(port, CLIENT_MODEL, size, key)
        before = cpu()
        answers = await loadgen.sequential(
            port, raw, count, lambda a, d=digest: loadgen.check_json(a, d)
        )
        out[f"cpu_{label}_ms"] = (cpu() - before) / count * 1000
        out[f"{label}_ms"] = p([a.total for a in answers], 0.5) * 1000
        requests += count
    if pid:
        out["rss_end_mib"] = tree_rss_mib(pid)
    return out


# ---------------------------------------------------------------- the whole run


ROWS = [
    # key, label, unit, lower is better
    ("startup_s", "start-up to serving", "s"),
    ("rss_idle_mib", "RSS idle", "MiB"),
    ("rss_growth_mib", "RSS growth over the latency and throughput runs", "MiB"),
    ("rss_end_mib", "RSS at the end (after 4 MiB bodies)", "MiB"),
    ("lat_p50_ms", "latency p50 (sequential)", "ms"),
    ("lat_p99_ms", "latency p99 (sequential)", "ms"),
    ("added_p50_ms", "added latency p50", "ms"),
    ("added_p99_ms", "added latency p99", "ms"),
    ("rps_16", "throughput, 16 connections", "req/s"),
    ("rps_64", "throughput, 64 connections", "req/s"),
    ("cpu_seq_req_us", "proxy CPU per request, one at a time", "µs"),
    ("cpu_req_us", "proxy CPU per request, 16 and 64 at once", "µs"),
    ("cpu_stream_us", f"proxy CPU per stream ({STREAM_CHUNKS} chunks at once)", "µs"),
    ("cpu_chunk_us", "proxy CPU per streamed event (paced)", "µs"),
    ("ttfb_ms", f"first event, paced stream ({PACE_S * 1000:g} ms apart)", "ms"),
    ("added_ttfb_ms", "added time to first event", "ms"),
    ("ttfc_ms", f"first text, paced stream ({PACE_S * 1000:g} ms apart)", "ms"),
    ("added_ttfc_ms", "added time to first text", "ms"),
    ("paced_reads", f"reads per paced stream ({PACED_CHUNKS + 4} events)", ""),
    ("cpu_msg_req_us", "Messages in (translated): proxy CPU per request, one at a time", "µs"),
    ("cpu_msg_chunk_us", "Messages in (translated): proxy CPU per streamed event (paced)", "µs"),
    ("cpu_resp_req_us", "Responses in (translated): proxy CPU per request, one at a time", "µs"),
    ("cpu_resp_chunk_us", "Responses in (translated): proxy CPU per streamed event (paced)", "µs"),
    ("big1_ms", "1 MiB request", "ms"),
    ("big4_ms", "4 MiB request", "ms"),
    ("cpu_big1_ms", "proxy CPU per 1 MiB request", "ms"),
    ("cpu_big4_ms", "proxy CPU per 4 MiB request", "ms"),
]

TARGETS = [
    # key, what, limit (trayproxy), as a ratio to the floor?
    ("cpu_req_us", "CPU per request ≤ 1.5× floor", 1.5, True),
    ("added_p50_ms", "added latency p50 ≤ 0.6 ms", 0.6, False),
    ("added_p99_ms", "added latency p99 ≤ 1 ms", 1.0, False),
    ("cpu_chunk_us", "CPU per chunk ≤ 1.3× floor", 1.3, True),
    ("added_ttfb_ms", "added first event ≤ 1 ms", 1.0, False),
    ("cpu_big4_ms", "4 MiB request: CPU ≤ 1.5× floor", 1.5, True),
    ("rss_idle_mib", "RSS idle ≤ 45 MiB", 45.0, False),
    ("rss_growth_mib", "RSS growth ≤ 5 MiB", 5.0, False),
    ("startup_s", "start-up ≤ 0.5 s", 0.5, False),
]


def derive(results: dict[str, dict[str, float]]) -> None:
    direct = results["direct"]
    for name, r in results.items():
        if name == "direct":
            continue
        r["added_p50_ms"] = r["lat_p50_ms"] - direct["lat_p50_ms"]
        r["added_p99_ms"] = r["lat_p99_ms"] - direct["lat_p99_ms"]
        r["added_ttfb_ms"] = r["ttfb_ms"] - direct["ttfb_ms"]
        r["added_ttfc_ms"] = r["ttfc_ms"] - direct["ttfc_ms"]


def fmt(value: float | None) -> str:
    if value is None or value != value:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(med: dict[str, dict[str, float]]) -> str:
    names = list(med)
    head = ["metric", *names]
    if "floor" in med and "trayproxy" in med:
        head.append("trayproxy ÷ floor")
    if "litellm" in med and "trayproxy" in med:
        head.append("litellm ÷ trayproxy")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, unit in ROWS:
        cells = [f"{label} ({unit})" if unit else label]
        cells += [fmt(med[n].get(key)) for n in names]
        if "floor" in med and "trayproxy" in med:
            f, t = med["floor"].get(key), med["trayproxy"].get(key)
            cells.append(f"{t / f:.2f}×" if f and t is not None and f == f and f > 0 else "")
        if "litellm" in med and "trayproxy" in med:
            l_, t = med["litellm"].get(key), med["trayproxy"].get(key)
            ratio = l_ / t if t and l_ is not None and t > 0 else None
            cells.append(
                "" if ratio is None else f"{ratio:.1f}×" if ratio >= 1 else f"{ratio:.3f}×"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(med: dict[str, dict[str, float]]) -> list[tuple[str, str, bool]]:
    out = []
    t, f = med.get("trayproxy"), med.get("floor")
    if t is None:
        return out
    for key, what, limit, ratio in TARGETS:
        value = t.get(key)
        if value is None:
            continue
        if ratio:
            if not f or not f.get(key):
                continue
            measured = value / f[key]
            out.append((what, f"{measured:.2f}×", measured <= limit))
        else:
            out.append((what, fmt(value), value <= limit))
    return out


async def run_target(
    name: str, mock: int, work: Path, core: int | None, litellm: Path | None, sizes: Sizes
) -> dict[str, float]:
    target = launch(name, mock, work, core, litellm)
    try:
        timeout = 120.0 if name == "litellm" else 30.0
        startup = wait_serving(target, CLIENT_MODEL, timeout)
        result = await measure(target, sizes)
        if target.proc is not None:
            result["startup_s"] = startup
        return result
    finally:
        stop(target.proc)


def tray_idle(seconds: float = 10.0) -> dict[str, float] | None:
    """The tray app sitting idle: RSS and CPU %, when a display is there to show it."""
    if not os.environ.get("DISPLAY"):
        return None
    with tempfile.TemporaryDirectory() as d:
        env = clean_env(Path(d))
        cfg = Path(d) / "config.toml"
        cfg.write_text(trayproxy_config(9, free_port()))
        cfg.chmod(0o600)
        proc = subprocess.Popen(
            [sys.executable, "-m", "trayproxy", "--config", str(cfg)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            time.sleep(4.0)
            before = tree_cpu(proc.pid)
            time.sleep(seconds)
            used = tree_cpu(proc.pid) - before
            return {"rss_mib": tree_rss_mib(proc.pid), "cpu_percent": used / seconds * 100}
        finally:
            stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one repeat (a check)")
    parser.add_argument("--repeats", type=int, default=None, help="default: 5 (1 with --quick)")
    parser.add_argument(
        "--litellm",
        type=Path,
        default=None,
        help=f"LiteLLM's `litellm` command (default: {LITELLM_DEFAULT.relative_to(HERE.parent)} "
        "when it exists; bench/setup_litellm.sh makes it)",
    )
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument(
        "--only",
        default=None,
        help="a comma-separated subset of floor,trayproxy,litellm (direct always runs)",
    )
    parser.add_argument("--tray", action="store_true", help="also measure the tray app idle")
    parser.add_argument("--json", type=Path, help="write every measurement to this file")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 5)
    litellm = args.litellm or (LITELLM_DEFAULT if LITELLM_DEFAULT.exists() else None)
    if args.no_litellm:
        litellm = None
    names = ["direct", "floor", "trayproxy"] + (["litellm"] if litellm else [])
    if args.only:
        wanted = {n.strip() for n in args.only.split(",")}
        names = [n for n in names if n == "direct" or n in wanted]
    load_core, proxy_core = cores()
    if load_core is not None:
        os.sched_setaffinity(0, {load_core})
    work = Path(tempfile.mkdtemp(prefix="trayproxy-bench-"))
    precompile()
    mock = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.mock_upstream",
            "--chunks",
            str(STREAM_CHUNKS),
            "--paced-chunks",
            str(PACED_CHUNKS),
            "--delay",
            str(PACE_S),
        ],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=pin(load_core),
        start_new_session=True,
    )
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    try:
        mock_port = int(mock.stdout.readline())  # type: ignore[union-attr]
        print(
            f"cores: load generator + mock on {load_core}, proxy on {proxy_core}; "
            f"{repeats} repeat(s); targets: {', '.join(names)}",
            flush=True,
        )
        for rep in range(repeats):
            order = names if rep % 2 == 0 else [names[0], *reversed(names[1:])]
            for name in order:
                started = time.perf_counter()
                result = asyncio.run(run_target(name, mock_port, work, proxy_core, litellm, sizes))
                runs[name].append(result)
                print(
                    f"  repeat {rep + 1}: {name} in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
    finally:
        stop(mock)
        shutil.rmtree(work, ignore_errors=True)
    med: dict[str, dict[str, float]] = {}
    for name, results in runs.items():
        keys = set().union(*results)
        med[name] = {k: statistics.median(r[k] for r in results if k in r) for k in keys}
    derive(med)
    print()
    print(table(med))
    print()
    if args.quick:
        # a check that the harness works and every answer is right, not a measurement: one
        # short repeat on a shared machine says little about the targets
        print("quick run: every answer checked; figures are not compared with the targets")
    else:
        for what, measured, passed in verdicts(med):
            print(f"{'PASS' if passed else 'MISS'}  {what}: {measured}")
    tray = tray_idle() if args.tray else None
    if tray:
        print(f"\ntray app idle: RSS {tray['rss_mib']:.1f} MiB, CPU {tray['cpu_percent']:.2f} %")
    if args.json:
        args.json.write_text(json.dumps({"median": med, "runs": runs, "tray": tray}, indent=2))
    return 0
