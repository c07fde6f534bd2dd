"""Load and soak: many requests through a real ``trayproxy serve`` process.

    python -m bench.soak --requests 10000 --concurrency 64

Starts the mock provider and trayproxy (each its own process, on 127.0.0.1), sends a mix of
streamed and non-streamed chat completions, and checks: no errors, every stream complete
(all words, then [DONE]), and trayproxy's resident memory growing less than ``--max-growth``
MiB after the warm-up. Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.mock_upstream import WORDS

EXPECTED = "".join(WORDS)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )


async def one(session: aiohttp.ClientSession, url: str, stream: bool) -> str | None:
    body = {
        "model": "bench/model",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    async with session.post(url, json=body) as resp:
        if resp.status != 200:
            return f"status {resp.status}"
        if not stream:
            data = await resp.json()
            text = data["choices"][0]["message"]["content"]
            return None if text == EXPECTED else "wrong answer"
        text, done = [], False
        async for line in resp.content:
            if line.startswith(b"data: [DONE]"):
                done = True
            elif line.startswith(b"data: "):
                obj = json.loads(line[6:])
                if "error" in obj:
                    return "in-stream error"
                for choice in obj.get("choices", []):
                    text.append(choice["delta"].get("content") or "")
        if not done or "".join(text) != EXPECTED:
            return "incomplete stream"
        return None


async def load(url: str, total: int, concurrency: int, on_progress) -> tuple[dict[str, int], float]:
    errors: dict[str, int] = {}
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for n in counter:
                try:
                    problem = await one(session, url, stream=n % 2 == 0)
                except Exception as exc:
                    problem = type(exc).__name__
                if problem:
                    errors[problem] = errors.get(problem, 0) + 1
                on_progress(n)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return errors, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--max-growth", type=float, default=15.0, help="MiB")
    args = parser.parse_args()

    mock = start([sys.executable, "-m", "bench.mock_upstream"])
    assert mock.stdout is not None
    upstream_port = int(mock.stdout.readline())
    home = tempfile.mkdtemp(prefix="trayproxy-soak-")
    port = free_port()
    Path(home, "config.toml").write_text(
        f"[server]\nport = {port}\nwatch_config = false\n"
        f'[providers.bench]\nbase_url = "http://127.0.0.1:{upstream_port}/v1"\napi_key = "k"\n'
    )
    env = {**os.environ, "TRAYPROXY_HOME": home}
    proxy = start([sys.executable, "-m", "trayproxy", "serve"], env=env)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        wait_ready(f"http://127.0.0.1:{port}/v1/models")
        samples: dict[str, float] = {}

        def progress(n: int) -> None:
            if n == args.warmup:
                samples["after_warmup"] = rss_mib(proxy.pid)

        samples["start"] = rss_mib(proxy.pid)
        errors, seconds = asyncio.run(load(url, args.requests, args.concurrency, progress))
        samples["end"] = rss_mib(proxy.pid)
    finally:
        proxy.terminate()
        mock.terminate()
        proxy.wait(15)
        mock.wait(15)
    growth = samples["end"] - samples.get("after_warmup", samples["start"])
    failed = sum(errors.values())
    print(
        f"requests: {args.requests} ({args.requests // 2} streamed), concurrency "
        f"{args.concurrency}, {seconds:.1f} s, {args.requests / seconds:.0f} req/s"
    )
    print(f"errors: {failed} {errors if errors else ''}".rstrip())
    print(
        f"trayproxy RSS: start {samples['start']:.1f} MiB, after {args.warmup} requests "
        f"{samples.get('after_warmup', float('nan')):.1f} MiB, end {samples['end']:.1f} MiB "
        f"(growth after warm-up {growth:+.1f} MiB, limit {args.max_growth} MiB)"
    )
    ok = failed == 0 and growth < args.max_growth
    print("soak: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


def free_port() -> int:
    """A free port on 127.0.0.1 (closed again before trayproxy binds it)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 20) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("trayproxy did not start")


if __name__ == "__main__":
    sys.exit(main())
