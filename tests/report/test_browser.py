"""The report in a real browser: headless Chromium renders every figure and fetches nothing.

Chromium is driven over the DevTools protocol on ``--remote-debugging-pipe`` (fds 3 and 4,
NUL-separated JSON) by the small client below, not by Playwright: Debian's ``chromium`` is the
only browser there is (``.ci/run`` installs it), a pipe needs no port and no WebSocket library,
and the protocol's Network events see every request the page makes. Skipped when
``/usr/bin/chromium`` is absent.
"""

import base64
import fcntl
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from grownet.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",  # root in a container: the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
TIMEOUT_S = 60  # two busy CPU cores: starting Chromium and drawing 20 figures takes a while

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")


class Browser:
    """Headless Chromium and one page, spoken to over the DevTools pipe."""

    def __init__(self, profile: Path) -> None:
        # Pipes go to fds >= 10 first, so placing them on 3 and 4 in the child clobbers nothing.
        to_r, to_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in os.pipe())
        from_r, from_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in os.pipe())

        def place_pipes() -> None:  # in the child, before exec; dup2 clears close-on-exec
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        self.log = (profile.parent / "chromium.log").open("w")
        self.proc = subprocess.Popen(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            preexec_fn=place_pipes, close_fds=False,
        )  # fmt: skip
        for fd in (to_r, from_w):
            os.close(fd)
        self.out, self.inp = to_w, from_r
        self.buffer, self.events, self.next_id = b"", [], 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable", session=True)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.inp], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.inp, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer; events that arrive meanwhile are kept."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self.out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._read(deadline))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True)  # fmt: skip
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            self.proc.kill()
        self.proc.wait(timeout=30)
        os.close(self.out), os.close(self.inp)
        self.log.close()


# How many figure divs the page has, how many plotly has drawn into, and whether any offers
# plotly's "Share chart" button (an upload to plotly's cloud; the report turns it off).
COUNT = """JSON.stringify({
  figures: document.querySelectorAll('div.plotly-graph-div').length,
  rendered: [...document.querySelectorAll('div.plotly-graph-div')]
      .filter(d => d.querySelector('svg.main-svg')).length,
  ids: [...document.querySelectorAll('div.plotly-graph-div')].map(d => d.id),
  share: document.querySelectorAll('.modebar-btn[data-title^="Share"]').length,
})"""


# The page's width against the window's, and the elements that stick out past the window
# (a table in its own scrolling box may: only the box must fit).
OVERFLOW = """JSON.stringify({
  page: document.documentElement.scrollWidth,
  window: window.innerWidth,
  over: [...document.querySelectorAll('body *')]
      .filter(e => !e.closest('div.wide') && e.getBoundingClientRect().right > window.innerWidth)
      .map(e => e.tagName + ': ' + e.textContent.slice(0, 60)).slice(0, 5),
})"""


WIDTH = 1280  # a laptop's browser window, in CSS pixels


def show(browser: Browser, page: Path) -> dict[str, Any]:
    """Open ``page`` in a window :data:`WIDTH` wide and wait until plotly has drawn every
    figure; returns the last :data:`COUNT`."""
    expected = page.read_text().count('class="plotly-graph-div"')
    browser.call("Emulation.setDeviceMetricsOverride", session=True, width=WIDTH,
                 height=900, deviceScaleFactor=1, mobile=False)  # fmt: skip
    browser.call("Page.navigate", session=True, url=page.resolve().as_uri())
    browser.wait_for("Page.loadEventFired")
    deadline = time.monotonic() + TIMEOUT_S
    while (state := json.loads(browser.evaluate(COUNT)))["rendered"] < expected:
        assert time.monotonic() < deadline, f"only {state['rendered']} of {expected} drawn"
        time.sleep(0.2)
    return state


def test_every_figure_renders_offline(demo, tmp_path):
    page = write_report([demo, demo / "grown"], out=tmp_path / "site" / "report.html")
    expected = page.read_text().count('class="plotly-graph-div"')
    assert expected >= 15  # curves, growth, sweeps, benchmarks, networks, studies
    browser = Browser(tmp_path / "profile")
    try:
        state = show(browser, page)
        width = json.loads(browser.evaluate(OVERFLOW))
        height = browser.call("Page.getLayoutMetrics", session=True)["cssContentSize"]["height"]
        shot = browser.call(
            "Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1},
        )  # fmt: skip
        (tmp_path / "report.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()
    assert state["figures"] == state["rendered"] == expected
    assert state["share"] == 0
    assert width["page"] <= width["window"], width["over"]
    errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
    assert not errors, errors[0]["params"]["exceptionDetails"]
    urls = [
        e["params"].get("request", {}).get("url") or e["params"].get("url", "")
        for e in browser.events
        if e.get("method") in ("Network.requestWillBeSent", "Network.webSocketCreated")
    ]
    assert not [u for u in urls if u.split(":", 1)[0] in ("http", "https", "ws", "wss")], urls
    assert (page.parent / "plotly.min.js").as_uri() in urls


def test_long_summary_lines_wrap_inside_the_window(searches, copy_of, tmp_path):
    search = copy_of(searches["new"])
    path = "/".join(["runs", "a-study-with-a-long-name", "trials", "17", "x" * 200])
    line = "recommended: depth 4, widths conv1 8, fc 10; " * 8
    (search / "summary.txt").write_text(f"{line}\n{path}\n")
    page = write_report(search)
    browser = Browser(tmp_path / "profile")
    try:
        show(browser, page)
        width = json.loads(browser.evaluate(OVERFLOW))
    finally:
        browser.close()
    assert width["page"] <= width["window"] == WIDTH, width["over"]
