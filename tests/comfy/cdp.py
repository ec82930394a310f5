"""A minimal headless-Chromium driver over the DevTools protocol (aiohttp, which ComfyUI already needs)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]


class Browser:
    """One page of a fresh Chromium profile; `errors` collects uncaught exceptions, console and (non-network) log errors."""

    def __init__(self, chromium: str = "/usr/bin/chromium", width: int = 1400, height: int = 900):
        self._profile = tempfile.TemporaryDirectory(prefix="vrg-chromium-")
        self._process = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}", f"--window-size={width},{height}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "TMPDIR": self._profile.name},  # its own temporary files go with the profile
        )
        self.errors: list[str] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._session = self._ws = self._reader = None

    async def __aenter__(self) -> "Browser":
        port_file = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools server")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as r:
            page = next(t for t in await r.json() if t["type"] == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")
        return self

    async def __aexit__(self, *exc) -> None:
        self._reader.cancel()
        await self._ws.close()
        await self._session.close()
        self._process.terminate()
        self._process.wait(timeout=10)
        for _ in range(10):  # its helper processes may still write into the profile for a moment
            try:
                self._profile.cleanup()
                return
            except OSError:
                await asyncio.sleep(0.5)
        shutil.rmtree(self._profile.name, ignore_errors=True)

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(f"DevTools: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
            elif data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                self.errors.append("uncaught: " + (details.get("exception", {}).get("description") or details.get("text", "")))
            elif data.get("method") == "Runtime.consoleAPICalled" and data["params"]["type"] == "error":
                args = data["params"]["args"]
                self.errors.append("console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in args))
            elif data.get("method") == "Log.entryAdded" and data["params"]["entry"]["level"] == "error":
                entry = data["params"]["entry"]
                if entry["source"] != "network":  # optional files (user.css, favicon) and offline update checks
                    self.errors.append(f"{entry['source']}: {entry['text']}")

    async def send(self, method: str, **params) -> dict:
        message_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self._ws.send_str(json.dumps({"id": message_id, "method": method, "params": params}))
        return await asyncio.wait_for(future, 60)

    async def goto(self, url: str, ready: str, timeout: float = 60) -> None:
        """Open `url` and wait until the JS expression `ready` is true."""
        await self.send("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not await self.evaluate(f"Boolean({ready})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url}: {ready} did not become true in {timeout} s; errors: {self.errors}")
            await asyncio.sleep(0.25)

    async def evaluate(self, expression: str):
        """The JSON value of a JS expression (awaited if it is a promise)."""
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result["result"].get("value")

    async def screenshot(self, path: Path, quality: int | None = None) -> Path:
        """PNG, or JPEG when `quality` is given."""
        params = {"format": "png"} if quality is None else {"format": "jpeg", "quality": quality}
        data = await self.send("Page.captureScreenshot", **params)
        path.write_bytes(base64.b64decode(data["data"]))
        return path
