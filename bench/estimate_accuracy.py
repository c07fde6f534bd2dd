"""How far trayproxy's token estimate (``trayproxy/core/estimate.py``) is from real
tokenizers (cl100k and o200k, from the npm package gpt-tokenizer), on texts like those a
coding assistant sends: prose, Markdown, Python, JavaScript, CSS, JSON, a chat request,
Chinese and Russian. Characters / 4 is shown beside it.

    python -m bench.estimate_accuracy     (needs node and npm; installs gpt-tokenizer once)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from trayproxy.core.estimate import request_tokens, text_tokens

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "estimate"
FILES = (
    "README.md",
    "docs/configuration.md",
    "docs/providers.md",
    "trayproxy/gateway/stream.py",
    "trayproxy/config/parse.py",
    "trayproxy/page/web/app.js",
    "trayproxy/page/web/app.css",
    "tests/js/package-lock.json",
)
SAMPLES = {
    "chinese.txt": (
        "本地大语言模型网关运行在系统托盘中。开发者双击即可启动，图标出现后，嵌入式代理在本机"
        "端口提供服务。编码助手发送模型标识，配置文件把每个标识映射到提供商以及该提供商期望的"
        "名称。请帮我写一个函数，读取配置文件并返回所有模型的列表。"
    ),
    "russian.txt": (
        "Локальный шлюз для больших языковых моделей работает в системном трее. Разработчик "
        "дважды щёлкает по нему, появляется значок, и встроенный прокси обслуживает запросы."
    ),
}
REQUEST = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "You are a helpful coding assistant. Answer briefly."},
        {"role": "user", "content": "Write a Python function that parses a TOML file."},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Read a file from disk",
                "parameters": {
                    "type": "object",
                    "properties": {"path": {"type": "string", "description": "absolute path"}},
                    "required": ["path"],
                },
            },
        }
    ],
}


def main() -> int:
    if not (HERE / "node_modules" / "gpt-tokenizer").exists():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True
        )
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: ROOT / name for name in FILES}
        for name, text in SAMPLES.items():
            paths[name] = Path(tmp) / name
            paths[name].write_text(text, encoding="utf-8")
        # the chat request as a provider renders it: the messages' text and the tools' JSON
        rendered = "\n".join(m["content"] for m in REQUEST["messages"]) + json.dumps(
            REQUEST["tools"]
        )
        paths["a chat request"] = Path(tmp) / "request.txt"
        paths["a chat request"].write_text(rendered, encoding="utf-8")
        counted = subprocess.run(
            ["node", str(HERE / "count.mjs"), *map(str, paths.values())],
            check=True,
            capture_output=True,
            text=True,
        )
        real = json.loads(counted.stdout)
        print(f"{'text':30} {'cl100k':>7} {'o200k':>7} {'estimate':>9} {'off':>6} {'chars/4':>8}")
        worst = 0.0
        for name, path in paths.items():
            cl, o2, chars = real[str(path)]
            mean = (cl + o2) / 2
            if name == "a chat request":
                guess = request_tokens(REQUEST)
            else:
                guess = text_tokens(path.read_text(encoding="utf-8"))
            off = guess / mean - 1
            worst = max(worst, abs(off))
            quarter = chars / 4 / mean - 1
            print(f"{name:30} {cl:7} {o2:7} {guess:9} {off:+6.0%} {quarter:+8.0%}")
        print(f"worst: {worst:.0%} from the mean of the two tokenizers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
