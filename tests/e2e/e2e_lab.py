"""The e2e driver: a JupyterLab server handle, a page-level notebook driver, and readers of saved notebooks.

Used by tests/e2e/conftest.py (fixtures) and the e2e tests; no pytest fixtures here.
"""
from __future__ import annotations

import json, os, re, shutil, socket, time, urllib.request
from pathlib import Path

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


def free_port() -> int:
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
        t0 = time.monotonic()
        self.page.goto(f"{self.lab.url}/lab/tree/{rel}?reset&token={self.lab.token}", wait_until="domcontentloaded")
        self.panel = self.page.locator(".jp-NotebookPanel:visible").first
        self.panel.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=timeout*1000)
        t1 = time.monotonic()
        self.dismiss_popups()
        self.wait_kernel_idle(timeout)
        self.open_timing = {"page_s": round(t1 - t0, 1), "kernel_s": round(time.monotonic() - t1, 1)}
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
        """Text of every *error* output in the page. Error outputs render like stderr, but IPython colours them
        (ANSI spans); a traceback a cell merely prints to stderr (e.g. an entry point's `print_exc`) is not one."""
        outs = self.panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        return [o.text_content() for o in outs.all()
                if o.locator("span[class*='ansi-']").count() and re.search(r"Error|Exception|Traceback", o.text_content())]

    def scroll_to_top(self):
        "Scroll the notebook back to its first cell (the title), as a reader opening it sees it."
        self.panel.locator(".jp-WindowedPanel-outer").first.evaluate("e => { e.scrollTop = 0 }")
        self.page.wait_for_timeout(200)

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
