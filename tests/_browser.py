"""A page opened in headless Chromium over the DevTools protocol, for the report test.

Chromium talks to us through ``--remote-debugging-pipe`` (JSON messages ending in a NUL
byte on file descriptors 3 and 4), so nothing beyond the standard library is needed and no
port is opened. Host names resolve to nothing: a page that needs the network shows it.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class PageLoad:
    title: str
    images: list[dict[str, Any]]  # src (shortened), complete, naturalWidth, naturalHeight
    requests: list[str]  # every URL the page asked for
    errors: list[str]  # console errors, uncaught exceptions, browser log errors
    events: list[dict[str, Any]] = field(repr=False, default_factory=list)


class _Chromium:
    def __init__(self, profile: str, log) -> None:
        exe = shutil.which("chromium")
        if exe is None:
            raise RuntimeError("chromium is not installed; 'make system-deps' installs it")
        to_child, self._to_child = os.pipe()
        self._from_child, from_child = os.pipe()

        def use_fds_3_and_4() -> None:  # the pipe's fixed descriptors in the child
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]
            os.dup2(high[0], 3)  # above 10 first: neither dup2 overwrites the other's source
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--disable-dev-shm-usage",
             "--disable-component-update", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1200,900", "about:blank"],
            pass_fds=(3, 4), preexec_fn=use_fds_3_and_4, stdin=subprocess.DEVNULL,
            stdout=log, stderr=log,
        )  # fmt: skip
        os.close(to_child)
        os.close(from_child)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        return self._id

    def wait_for(self, match, deadline: float) -> dict[str, Any]:
        """The first message ``match`` accepts; every other one is kept in ``events``."""
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                message = json.loads(raw)
                if match(message):
                    return message
                self.events.append(message)
            ready, _, _ = select.select([self._from_child], [], [], deadline - time.monotonic())
            if not ready:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise EOFError(f"chromium exited (status {self.proc.poll()})")
            self._buf += chunk

    def call(self, method: str, params=None, session=None, *, deadline: float) -> dict:
        i = self.send(method, params, session)
        reply = self.wait_for(lambda m: m.get("id") == i, deadline)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self._to_child)
            os.close(self._from_child)


_IMAGES = """JSON.stringify([...document.images].map(i => ({src: i.src.slice(0, 40),
    complete: i.complete, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight})))"""


def open_in_chromium(page: Path, screenshot: Path, timeout: float = 30.0) -> PageLoad:
    """Load ``page`` (a local file), wait for its load event, write a full-page PNG."""
    deadline = time.monotonic() + timeout
    log_path = screenshot.with_suffix(".log")  # chromium's own output
    with tempfile.TemporaryDirectory() as profile, open(log_path, "wb") as log:
        browser = _Chromium(profile, log)
        try:
            target = browser.call("Target.createTarget", {"url": "about:blank"}, deadline=deadline)
            session = browser.call("Target.attachToTarget",
                                   {"targetId": target["targetId"], "flatten": True},
                                   deadline=deadline)["sessionId"]  # fmt: skip
            for domain in ("Page", "Runtime", "Log", "Network"):
                browser.call(f"{domain}.enable", session=session, deadline=deadline)
            browser.call("Page.navigate", {"url": page.resolve().as_uri()}, session,
                         deadline=deadline)  # fmt: skip
            browser.wait_for(lambda m: m.get("method") == "Page.loadEventFired", deadline)
            evaluate = {"expression": f"[document.title, {_IMAGES}]", "returnByValue": True}
            title, images = browser.call("Runtime.evaluate", evaluate, session,
                                         deadline=deadline)["result"]["value"]  # fmt: skip
            shot = browser.call("Page.captureScreenshot",
                                {"format": "png", "captureBeyondViewport": True}, session,
                                deadline=deadline)  # fmt: skip
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        finally:
            browser.close()
    events = browser.events
    return PageLoad(
        title=title,
        images=json.loads(images),
        requests=[
            e["params"]["request"]["url"]
            for e in events
            if e.get("method") == "Network.requestWillBeSent"
        ],  # fmt: skip
        errors=[json.dumps(e["params"])[:300] for e in events if _is_error(e)],
        events=events,
    )


def _is_error(event: dict[str, Any]) -> bool:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        return True
    if method == "Runtime.consoleAPICalled":
        return params.get("type") in ("error", "assert")
    if method == "Log.entryAdded":
        return params.get("entry", {}).get("level") == "error"
    return False
