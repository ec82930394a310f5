"""A real ComfyUI for tests and maintainer tools: the pack imported in this process, or a server.

Neither changes the ComfyUI tree: the server's folders live in a given base directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

PACK = "comfyui-vrg"


def import_pack(comfyui: str, repo: Path, name: str = "vrg_pack"):
    """ComfyUI importable here (CPU) and the pack imported as ComfyUI imports it (a package)."""
    sys.path.insert(0, comfyui)
    from comfy.cli_args import args

    args.cpu = True
    spec = importlib.util.spec_from_file_location(name, repo / "__init__.py")
    pack = importlib.util.module_from_spec(spec)
    sys.modules[name] = pack
    spec.loader.exec_module(pack)
    return pack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, data: dict | None = None, timeout: float = 30):
    """GET (or POST `data` as JSON) and parse the JSON answer."""
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def running(comfyui: str, base: Path, repo: Path, python: str = sys.executable, extra_nodes: dict | None = None,
            env: dict | None = None):
    """A server on a free 127.0.0.1 port whose base directory (models, custom_nodes, input, output,
    temp, user) is `base`, with `repo` linked as custom_nodes/comfyui-vrg (and each of `extra_nodes`,
    name -> folder, beside it); `env` adds environment variables; stopped on exit."""
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / PACK).symlink_to(repo, target_is_directory=True)
    for name, folder in (extra_nodes or {}).items():
        (base / "custom_nodes" / name).symlink_to(folder, target_is_directory=True)
    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True)
    # A returning user: no template dialog, and a navigation mode whose first-load handler
    # does not hit the frontend's own settings-order error.
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True, "Comfy.Canvas.NavigationMode": "custom"}))
    port = free_port()
    log = base / "server.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
             "--database-url", "sqlite:///:memory:", "--disable-auto-launch"],
            cwd=comfyui, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                http_json(f"{url}/system_stats", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() - started > 180:
                    raise RuntimeError(f"ComfyUI did not start; see {log}:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.5)
        yield types.SimpleNamespace(url=url, base=base, log=log, startup_seconds=time.monotonic() - started)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
