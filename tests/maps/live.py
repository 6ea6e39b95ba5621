"""Serve the app with chosen settings on a loopback port (like tests.conftest.live_server, whose
settings are fixed), and record what a page does in the browser."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from geo311.kernel.database import Database
from geo311.kernel.settings import Settings
from tests.support import APPS, pooled_app


@contextmanager
def serve(db: Database, make_settings: Callable[[int], Settings]) -> Iterator[str]:
    """Serve the app on ``db`` with ``make_settings(port)``; yield its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    app = pooled_app(make_settings(port), db=db)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            # Open live streams (/api/v1/live) never end by themselves.
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            APPS.discard(app)


@dataclass
class Recorder:
    """Every request a page made, its console messages and errors, and any dialog it opened."""

    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def origins(self) -> set[str]:
        """Return scheme://host:port of every request (data: and blob: URLs left out)."""
        out = set()
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https", "ws", "wss"):
                out.add(f"{parts.scheme}://{parts.netloc}")
        return out

    def problems(self) -> list[str]:
        """Return console lines that mean something broke: CSP violations, page errors."""
        return [
            c
            for c in self.console
            if "Content Security Policy" in c or c.startswith(("pageerror", "error"))
        ]


def record(page: Any) -> Recorder:
    """Start recording ``page``'s requests, console and dialogs (dialogs are dismissed)."""
    recorder = Recorder()
    page.on("request", lambda r: recorder.requests.append(r.url))
    page.on("console", lambda m: recorder.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: recorder.console.append(f"pageerror: {e}"))

    def on_dialog(dialog: Any) -> None:
        recorder.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return recorder


def keep_shot(path: Path) -> None:
    """Copy a screenshot into $GEO311_SCREENSHOTS when it is set (a folder to look at the
    pages in after a run); the test's own tmp folder has it either way."""
    folder = os.environ.get("GEO311_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)


def screenshot(page: Any, folder: Path, name: str) -> Path:
    """Save a full-page screenshot under ``folder`` and return its path."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
