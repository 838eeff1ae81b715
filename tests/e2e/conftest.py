"""Browser (end-to-end) fixtures: a private JupyterLab server and headless Chromium driven by Playwright.

`lab` starts JupyterLab once per session on 127.0.0.1 with a random free port and a random token, in a temp
folder that holds its root (notebooks are *copied* there, so the server never writes into the repo), its own
config/data/runtime/settings folders (no user config leaks in; news, update checks and cell windowing are off).
`browser` launches Debian's `/usr/bin/chromium` (Playwright's own browser download does not work offline) and
`nb` gives each test a fresh page with a `Notebook` driver: open a notebook, Run > Run All Cells, wait until the
kernel is idle, find outputs, click widgets, save, screenshot. Every test here carries `@pytest.mark.e2e`.

Missing Chromium or Playwright -> the tests skip with the reason (`scripts/browser-deps.sh` installs Chromium when
it can). Screenshots go to `test-artifacts/screenshots/` (gitignored); a failing test leaves `FAILED-<test>.png`.
"""
from __future__ import annotations

import json, os, re, secrets, shutil, socket, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NBS = REPO/"nbs"
SHOTS = Path(os.environ.get("CAI_E2E_ARTIFACTS", REPO/"test-artifacts"/"screenshots"))
CHROMIUM = Path(os.environ.get("CAI_CHROMIUM", "/usr/bin/chromium"))
# --disable-background-networking & co: without them Chromium's own connections (updates, safe browsing, QUIC
# probes) are refused by a closed network and slow every page down.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1366, "height": 768}  # a common laptop screen

# JupyterLab user settings written into the private settings dir: no news/update toasts, every cell in the DOM
# (the default 'contentVisibility' windowing skips rendering of off-screen cells, which hides their text).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none", "recordTiming": True},
}


def pytest_collection_modifyitems(items):
    "Everything under tests/e2e is an e2e test, whether or not the test remembered the marker."
    for it in items:
        if "/e2e/" in str(it.fspath).replace(os.sep, "/"): it.add_marker(pytest.mark.e2e)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


class LabServer:
    "A running JupyterLab: `url`, `token`, `root` (its temp root folder), REST helpers and the log."
    def __init__(self, proc, url, token, root, log):
        self.proc, self.url, self.token, self.root, self.log = proc, url, token, root, log

    def api(self, path, method="GET", body=None):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            data = r.read()
        return json.loads(data) if data else None

    def shutdown_kernels(self):
        "Stop every kernel (each test starts its own), so finished notebooks do not hold CPU or memory."
        for s in self.api("sessions"): self.api(f"sessions/{s['id']}", "DELETE")

    def log_tail(self, n=40) -> str:
        return "\n".join(Path(self.log).read_text(errors="replace").splitlines()[-n:])

    def add_notebook(self, src: Path, dest: str | None = None) -> str:
        "Copy notebook `src` into the server root (under `dest`, default its name); return its path relative to the root."
        rel = dest or Path(src).name
        (self.root/rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, self.root/rel)
        return rel


@pytest.fixture(scope="session")
def chromium():
    "Path of the Chromium binary; skips the e2e tests with the reason when it or Playwright is missing."
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]' installs it)")
    if not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/browser-deps.sh as root (apt-get install -y chromium) "
                    f"or set CAI_CHROMIUM=/path/to/chromium")
    return CHROMIUM


@pytest.fixture(scope="session")
def lab(tmp_path_factory, chromium):
    "A JupyterLab server on 127.0.0.1 with a random port and token, rooted in a temp folder."
    base = tmp_path_factory.mktemp("jupyterlab")
    root, cfg, data, runtime, settings, ws = (base/n for n in ("root", "config", "data", "runtime", "settings", "workspaces"))
    for d in (root, cfg, data, runtime, settings, ws): d.mkdir()
    for rel, val in LAB_SETTINGS.items():
        p = settings/rel; p.parent.mkdir(parents=True, exist_ok=True); p.write_text(json.dumps(val))
    (cfg/"jupyter_server_config.json").write_text(json.dumps({
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}))
    port, token = _free_port(), secrets.token_hex(24)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(cfg), JUPYTER_DATA_DIR=str(data), JUPYTER_RUNTIME_DIR=str(runtime),
               IPYTHONDIR=str(base/"ipython"), JUPYTER_PLATFORM_DIRS="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1")
    env.pop("MPLBACKEND", None)  # the kernel's own inline backend, as a researcher gets it
    log = base/"jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={ws}",
           "--ServerApp.open_browser=False", "--ServerApp.terminals_enabled=False",
           "--LabApp.extension_manager=readonly"]  # no PyPI look-ups from the extension manager
    if hasattr(os, "geteuid") and os.geteuid() == 0: cmd.append("--allow-root")  # containers / CI runners
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    srv = LabServer(proc, f"http://127.0.0.1:{port}", token, root, log)
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode} before serving:\n{srv.log_tail()}")
        try:
            srv.api("status"); break
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                proc.kill(); pytest.fail(f"JupyterLab did not answer on {srv.url} within 90 s:\n{srv.log_tail()}")
            time.sleep(0.3)
    yield srv
    try: srv.shutdown_kernels()
    except Exception: pass
    proc.terminate()
    try: proc.wait(15)
    except subprocess.TimeoutExpired: proc.kill(); proc.wait(5)


@pytest.fixture(scope="session")
def browser(chromium):
    "Headless Chromium launched by Playwright from the system binary."
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.when == "call": item.stash[_REPORT] = rep
    return rep

_REPORT = pytest.StashKey()


@pytest.fixture
def nb(request, lab, browser):
    "A `Notebook` driver on a fresh browser page; records page dialogs and errors; screenshot on failure."
    ctx = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    drv = Notebook(page, lab)
    yield drv
    rep = request.node.stash.get(_REPORT, None)
    if rep is not None and rep.failed:
        SHOTS.mkdir(parents=True, exist_ok=True)
        try: page.screenshot(path=str(SHOTS/f"FAILED-{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)}.png"))
        except Exception: pass
    ctx.close()
    try: lab.shutdown_kernels()
    except Exception: pass


class Notebook:
    """Drives one JupyterLab page the way a researcher does: open a notebook, Run > Run All Cells, read outputs.

    `dialogs` collects every JavaScript dialog (alert/confirm/prompt) the page opened — each is dismissed;
    `page_errors` collects uncaught page exceptions."""
    def __init__(self, page, lab: LabServer):
        self.page, self.lab = page, lab
        self.dialogs: list[str] = []
        self.page_errors: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def _on_dialog(self, d):
        self.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    # --- opening -------------------------------------------------------------------------------------------
    def open(self, rel: str, timeout: float = 90):
        "Open notebook `rel` (relative to the server root) in a fresh Lab workspace and wait for an idle kernel."
        self.path = rel
        self.page.goto(f"{self.lab.url}/lab/tree/{rel}?reset&token={self.lab.token}", wait_until="domcontentloaded")
        self.panel = self.page.locator(".jp-NotebookPanel:visible").first
        self.panel.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=timeout*1000)
        self.dismiss_popups()
        self.wait_kernel_idle(timeout)
        return self

    def dismiss_popups(self):
        "Answer JupyterLab's first-run popups: the kernel chooser (keep the suggested kernel) and news toasts (No)."
        p = self.page
        dlg = p.locator(".jp-Dialog")
        if dlg.count() and "select kernel" in dlg.first.inner_text().lower():
            dlg.locator("button.jp-mod-accept").first.click()
            dlg.first.wait_for(state="detached")
        for label in ("No", "Dismiss"):
            btn = p.locator(".jp-Notification-Toast button", has_text=re.compile(f"^{label}$"))
            if btn.count(): btn.first.click()

    def kernel_status(self) -> str:
        ind = self.panel.locator(".jp-Notebook-ExecutionIndicator")
        return ind.first.get_attribute("data-status") if ind.count() else "unknown"

    def kernel_ready(self) -> bool:
        "A kernel is attached to this notebook (server side), idle, and no dialog is open."
        sessions = [s for s in self.lab.api("sessions") if s.get("path", "").endswith(self.path)]
        return (bool(sessions) and sessions[0]["kernel"]["execution_state"] == "idle"
                and self.kernel_status() == "idle" and self.page.locator(".jp-Dialog").count() == 0
                and "No Kernel" not in self.panel.locator(".jp-Toolbar-kernelName").first.inner_text())

    def wait_kernel_idle(self, timeout: float = 90):
        deadline = time.monotonic() + timeout
        while not self.kernel_ready():
            self.dismiss_popups()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.path}: kernel not idle after {timeout}s (status {self.kernel_status()!r})")
            time.sleep(0.25)

    # --- running -------------------------------------------------------------------------------------------
    def code_prompts(self) -> list[str]:
        "The execution prompts of every code cell, e.g. ['[1]:', '[*]:', '[ ]:']."
        return [t.strip() for t in self.panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_text_contents()]

    def run_all(self, timeout: float = 300, menu: bool = True):
        "Run > Run All Cells (menu; else the Shift+Enter path), then wait until every cell ran and the kernel is idle."
        before = self.code_prompts()
        self.focus()
        t0 = time.monotonic()
        if menu:
            self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            item = self.page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel",
                                     has_text=re.compile(r"^Run All Cells$"))
            item.click()
        else:  # select all cells in command mode, then Shift+Enter
            self.page.keyboard.press("Control+a"); self.page.keyboard.press("Shift+Enter")
        self._wait_started(before)
        self.wait_run_finished(timeout, t0)
        return time.monotonic() - t0

    def focus(self):
        "Activate the notebook in command mode (click the first cell's prompt column, then Escape)."
        self.panel.locator(".jp-Cell .jp-InputPrompt").first.click()
        self.page.keyboard.press("Escape")

    def _wait_started(self, before, timeout=20):
        deadline = time.monotonic() + timeout
        while self.code_prompts() == before and self.kernel_status() == "idle":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.path}: running did not start (prompts still {before[:5]}...)")
            time.sleep(0.1)

    def run_cell(self, index: int, timeout: float = 120):
        "Run code cell number `index` (0-based among code cells) with Ctrl+Enter and wait for the kernel."
        cell = self.panel.locator(".jp-CodeCell").nth(index)
        before = self.code_prompts()
        cell.locator(".jp-InputPrompt").click()
        self.page.keyboard.press("Escape")
        t0 = time.monotonic()
        self.page.keyboard.press("Control+Enter")
        self._wait_started(before)
        self.wait_run_finished(timeout, t0)

    def wait_run_finished(self, timeout, t0):
        "Wait until no code cell is queued/running ('[*]') and the kernel is idle (stable for half a second)."
        deadline, calm_since = t0 + timeout, None
        time.sleep(0.3)
        while True:
            prompts = self.code_prompts()
            busy = any("*" in p for p in prompts) or self.kernel_status() != "idle"
            if not busy:
                calm_since = calm_since or time.monotonic()
                if time.monotonic() - calm_since > 0.5: return
            else: calm_since = None
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.path}: still running after {timeout}s; prompts {prompts}")
            self.dismiss_popups()
            time.sleep(0.25)

    def save(self):
        "File > Save (Ctrl+S) and wait until the document is no longer dirty."
        self.panel.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("Control+s")
        self.page.wait_for_function(
            "() => !document.querySelector('.lm-TabBar-tab.lm-mod-current.jp-mod-dirty')", timeout=20_000)

    # --- reading -------------------------------------------------------------------------------------------
    def output(self, index: int):
        "Locator of the output area of code cell `index` (0-based among code cells)."
        return self.panel.locator(".jp-CodeCell").nth(index).locator(".jp-OutputArea").first

    def tracebacks(self) -> list[str]:
        "Text of every output that is a Python traceback (error outputs render as stderr with a traceback)."
        texts = self.panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_text_contents()
        return [t for t in texts if re.search(r"Traceback|Error\b.*\n|^\w+(Error|Exception):", t, re.M)]

    def screenshot(self, name: str, locator=None) -> Path:
        "Save a PNG to test-artifacts/screenshots/<name>.png (the whole page, or just `locator`)."
        SHOTS.mkdir(parents=True, exist_ok=True)
        p = SHOTS/f"{name}.png"
        if locator is None:
            self.page.screenshot(path=str(p)); return p
        # an output taller than the notebook's scroll area would be cut off: grow the window for the shot
        h = locator.evaluate("e => e.getBoundingClientRect().height")
        vp = self.page.viewport_size
        if h + 250 > vp["height"]: self.page.set_viewport_size({"width": vp["width"], "height": int(h + 250)})
        try:
            locator.scroll_into_view_if_needed(); locator.screenshot(path=str(p))
        finally:
            self.page.set_viewport_size(vp)
        return p


def cell_timings(path: Path) -> list[tuple[float, int, str]]:
    "(seconds, cell index, first source line) of each executed code cell of a saved .ipynb, slowest first."
    from datetime import datetime
    out = []
    for i, c in enumerate(json.loads(Path(path).read_text())["cells"]):
        ex = c.get("metadata", {}).get("execution", {})
        a, b = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
        if a and b:
            dt = (datetime.fromisoformat(b.replace("Z", "+00:00")) - datetime.fromisoformat(a.replace("Z", "+00:00"))).total_seconds()
            out.append((dt, i, "".join(c["source"]).splitlines()[0][:70] if c["source"] else ""))
    return sorted(out, reverse=True)


def saved_errors(path: Path) -> list[str]:
    "Error outputs in a saved .ipynb: '<cell n>: Ename: evalue' for each, plus cells that never ran."
    nbj = json.loads(Path(path).read_text())
    errs = []
    for i, c in enumerate(nbj["cells"]):
        if c["cell_type"] != "code" or not "".join(c["source"]).strip(): continue
        for o in c.get("outputs", []):
            if o.get("output_type") == "error": errs.append(f"cell {i}: {o['ename']}: {o['evalue']}")
        if c.get("execution_count") is None: errs.append(f"cell {i}: did not run")
    return errs
