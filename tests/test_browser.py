"""The restorer app (`medgan_nb.figures.app`): its update function, and its sliders in a real browser.

- Without a browser: `restore_view` is deterministic and a slider's new value changes the scores; the widget
  redraws when a slider's value is set, as the browser sets it on release.
- In headless Chromium (Debian's ``chromium`` at /usr/bin/chromium, driven by Playwright through
  ``executable_path``): the app served by Voilà, and the notebook run in JupyterLab (where a JupyterLab <->
  ipywidgets version mismatch is the classic way sliders break). Each test starts its server on 127.0.0.1 on a
  free port, drags the noise slider, and checks that the restored image and the scores changed and that no
  "Error displaying widget" appeared. Requests that leave 127.0.0.1 are refused (the app must work offline).
  Without chromium or playwright these skip with a message; MEDGAN_REQUIRE_BROWSER=1 (set by .ci/run) makes
  that a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from medgan_nb.figures import app as restorer

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "app" / "restorer.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
BIN = Path(sys.executable).parent           # voila and jupyter of the interpreter running the tests
WAIT_MS = 45_000                            # one bound for each wait in the browser
SERVER_START_S = 40
POLL_S = 0.3


# ------------------------------------------------------------ no browser
def test_restore_view_is_deterministic_and_follows_the_sliders():
    clean = restorer.load_frame()
    assert clean.shape == (1, 3, restorer.SIZE, restorer.SIZE)

    def scores(**settings):
        return {k: v for k, v in restorer.restore_view(clean, **settings).scores.items() if k != "ms"}

    base = scores(noise_std=0.05)
    assert scores(noise_std=0.05) == base                               # same sliders, same numbers
    noisier = scores(noise_std=0.15)
    assert noisier["input"]["psnr"] < base["input"]["psnr"] - 3         # more noise: a worse input
    assert noisier["output"] != base["output"]
    assert base["guard"]["strength"] == 1.0                             # noise std 0.05: the guard lets it all in
    blurred_only = scores(noise_std=0.0, blur_sigma=1.0)
    assert blurred_only["guard"]["strength"] < 1.0                      # noise-free blur: the guard holds back
    assert scores(noise_std=0.0, blur_sigma=1.0, guard=False)["guard"] is None
    gan = scores(model="sharp", gan_weight=1.0)
    l1 = scores(model="sharp", gan_weight=0.0)
    assert gan["model"] == "sharp@gan_weight=1" and l1["model"] == "sharp@gan_weight=0"
    assert gan["output"]["detail"] > l1["output"]["detail"]              # the GAN end keeps more texture
    assert scores(model="realtime")["output"] != base["output"]


def test_gan_weights_are_cached_per_step():
    assert restorer.generator_for("sharp", 0.5) is restorer.generator_for("sharp", 0.5000001)
    assert restorer.generator_for("sharp", 0.5) is not restorer.generator_for("sharp", 0.6)
    with pytest.raises(ValueError, match="model must be one of"):
        restorer.generator_for("nope")


def test_widget_redraws_when_a_slider_is_released():
    pytest.importorskip("ipywidgets")
    app = restorer.RestorerApp()
    before = (app.scores.value, app.images["restored"].value, app.images["degraded"].value)
    assert "PSNR" in app.scores.value and "guard strength" in app.scores.value
    app.noise_std.value = 0.15                        # what the browser sends when the slider is let go
    after = (app.scores.value, app.images["restored"].value, app.images["degraded"].value)
    assert all(a != b for a, b in zip(before, after))
    assert app.images["clean"].value[:4] == b"\x89PNG"
    assert app.gan_weight.disabled                    # the L1 <-> GAN knob is for the GAN model only
    app.model.value = "sharp"
    assert not app.gan_weight.disabled and app.view.scores["model"] == "sharp@gan_weight=1"
    assert all(c.continuous_update is False for c in (app.blur_sigma, app.noise_std, app.sp_amount, app.gan_weight))


# ------------------------------------------------------------ in a browser
def _browser_or_skip():
    """Playwright's sync API, or skip (fail under MEDGAN_REQUIRE_BROWSER=1) naming what is missing."""
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("playwright (pip install -r requirements.txt)")
    for tool in ("voila", "jupyter-lab"):
        if not (BIN / tool).is_file():
            missing.append(f"{BIN / tool} (pip install -r requirements.txt)")
    if missing:
        message = "browser test needs " + ", ".join(missing)
        if os.environ.get("MEDGAN_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (MEDGAN_REQUIRE_BROWSER=1)")
        pytest.skip(message)
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """A server process on 127.0.0.1, in its own process group, killed (with its kernels) on exit."""

    def __init__(self, args: list[str], url: str, tmp: Path):
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
               "IPYTHONDIR": str(tmp / "ipython"), "JUPYTER_PLATFORM_DIRS": "1", "PYTHONUNBUFFERED": "1"}
        self.log = tmp / "server.log"
        self.url = url
        self.out = self.log.open("w")
        self.proc = subprocess.Popen(args, cwd=tmp, env=env, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def __enter__(self) -> "_Server":
        try:
            return self._wait_until_up()
        except BaseException:
            self.__exit__()                           # a server that never answered is killed too
            raise

    def _wait_until_up(self) -> "_Server":
        for _ in range(int(SERVER_START_S / POLL_S)):             # polls, each bounded by a 2 s timeout
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                urllib.request.urlopen(self.url, timeout=2).close()
                return self
            except urllib.error.HTTPError:              # any answer means it is listening
                return self
            except OSError:
                time.sleep(POLL_S)
        raise AssertionError(f"server did not answer at {self.url} within {SERVER_START_S} s:\n{self.tail()}")

    def __exit__(self, *exc: object) -> None:
        import signal
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                pass
        try:                          # anything left in its process group (kernels stop with the server: SIGTERM
            os.killpg(self.proc.pid, signal.SIGKILL)  # shuts them down, and a kernel exits when its parent dies)
        except (ProcessLookupError, PermissionError):
            pass
        self.out.close()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def _drive(page, server: _Server) -> None:
    """Drag the noise slider to the right; the restored image and the scores must change, without errors."""
    page.wait_for_selector(".medgan-scores", timeout=WAIT_MS)
    scores = page.locator(".medgan-scores").first
    restored = page.locator(".widget-image").nth(1)
    page.wait_for_function("el => (el.getAttribute('src') || '').length > 0", arg=restored.element_handle(),
                           timeout=WAIT_MS)
    before_text, before_src = scores.inner_text(), restored.get_attribute("src")
    slider = page.locator(".widget-slider", has_text="noise std").first
    handle = slider.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed(timeout=WAIT_MS)
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 40, y, steps=8)
    page.mouse.move(x + 80, y, steps=8)
    page.mouse.up()                                   # continuous_update=False: the value is sent on release
    page.wait_for_function("([el, old]) => el.innerText !== old", arg=[scores.element_handle(), before_text],
                           timeout=WAIT_MS)
    page.wait_for_function("([el, old]) => el.getAttribute('src') !== old", arg=[restored.element_handle(),
                                                                                  before_src], timeout=WAIT_MS)
    after = scores.inner_text()
    assert after != before_text and "dB" in after, after
    readout = slider.locator(".widget-readout").first.inner_text()
    assert float(readout) > 0.05, readout
    body = page.locator("body").inner_text()
    assert "Error displaying widget" not in body, server.tail()
    assert "Traceback" not in body and "Error" not in after, body[-2000:]


def _open(sync_playwright, url: str, server: _Server, pageerrors: list[str]):
    """(playwright, browser, page) at `url`, with every request that leaves 127.0.0.1 refused."""
    p = sync_playwright().start()
    browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, timeout=WAIT_MS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    local = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(local) else route.abort())
    page.on("pageerror", lambda e: pageerrors.append(str(e)))
    page.goto(url, timeout=WAIT_MS)
    return p, browser, page


def _run(sync_playwright, server: _Server, url: str, before_drive=None) -> None:
    errors: list[str] = []
    p, browser, page = _open(sync_playwright, url, server, errors)
    try:
        if before_drive:
            before_drive(page)
        _drive(page, server)
        assert not [e for e in errors if "widget" in e.lower()], errors
    except Exception:
        shot = server.log.parent / "browser-failure.png"               # kept in pytest's tmp_path
        try:
            page.screenshot(path=str(shot), full_page=True)
        except Exception:
            pass
        print(f"server log:\n{server.tail()}\npage errors: {errors}\nscreenshot: {shot}")
        raise
    finally:
        browser.close()
        p.stop()


def test_app_in_voila(tmp_path):
    sync_playwright = _browser_or_skip()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    args = [str(BIN / "voila"), str(NOTEBOOK), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
            "--Voila.port_retries=0"]
    with _Server(args, url + "no-such-page", tmp_path) as server:      # a 404 answers without starting a kernel
        _run(sync_playwright, server, url)


def test_notebook_in_jupyterlab(tmp_path):
    sync_playwright = _browser_or_skip()
    port, token = _free_port(), secrets.token_hex(16)
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)                    # the server may save it: a copy
    args = [str(BIN / "jupyter-lab"), "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.port_retries=0",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            *(["--allow-root"] if os.geteuid() == 0 else [])]          # CI runs as root
    base = f"http://127.0.0.1:{port}"

    def run_the_cell(page):
        """Once the notebook's kernel is idle, run its cell (Ctrl+Enter); accept JupyterLab's kernel dialog if
        it asks first (it does when a cell is run while the kernel connects), then run the cell again."""
        cell = page.locator(".jp-Notebook .jp-CodeCell .cm-content").first
        cell.wait_for(timeout=WAIT_MS)
        dialog = page.locator(".jp-Dialog")
        for _ in range(int(WAIT_MS / 1000 / POLL_S)):
            if dialog.count():                        # "Select Kernel" (at times on opening): the default, Python 3
                dialog.locator(".jp-mod-accept").first.click()
                dialog.first.wait_for(state="detached", timeout=WAIT_MS)
            with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5) as answer:
                if any(s["kernel"]["execution_state"] == "idle" for s in json.load(answer)):
                    break
            time.sleep(POLL_S)
        page.wait_for_timeout(1000)                   # the page's own connection to the kernel
        for _ in range(3):
            if dialog.count():                        # "Select Kernel": accept the default, Python 3 (ipykernel)
                dialog.locator(".jp-mod-accept").first.click()
                dialog.first.wait_for(state="detached", timeout=WAIT_MS)
            cell.click()
            page.keyboard.press("Control+Enter")
            page.wait_for_function("""() => document.querySelector('.jp-Dialog') ||
                !document.querySelector('.jp-CodeCell .jp-InputPrompt').innerText.includes('[ ]')""", timeout=WAIT_MS)
            if not dialog.count():
                return

    with _Server(args, f"{base}/api/status?token={token}", tmp_path) as server:
        _run(sync_playwright, server, f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", run_the_cell)


def test_make_app_serves_the_committed_notebook_on_localhost_only():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and not any(c.get("outputs") or c.get("execution_count") for c in code)     # committed clean
    assert "restorer_app()" in "".join(code[-1]["source"]) and all(c.get("id") for c in nb["cells"])
    rule = (ROOT / "Makefile").read_text().split("\napp:", 1)[1].split("\n\n", 1)[0]
    assert "voila app/restorer.ipynb" in rule and "--no-browser" in rule and "--Voila.ip=127.0.0.1" in rule
