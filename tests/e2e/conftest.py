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

import json, os, re, secrets, subprocess, sys, time, urllib.error

import pytest

from e2e_lab import CHROMIUM, CHROMIUM_ARGS, LAB_SETTINGS, SHOTS, VIEWPORT, LabServer, Notebook, free_port


def pytest_collection_modifyitems(items):
    "Everything under tests/e2e is an e2e test, whether or not the test remembered the marker."
    for it in items:
        if "/e2e/" in str(it.fspath).replace(os.sep, "/"): it.add_marker(pytest.mark.e2e)


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
    port, token = free_port(), secrets.token_hex(24)
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


_REPORT = pytest.StashKey()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    "Keep each test's call report, so the `nb` fixture can screenshot failures."
    rep = yield
    if rep.when == "call": item.stash[_REPORT] = rep
    return rep


@pytest.fixture(scope="session")
def browser_context(browser):
    "One browser context (a laptop-sized window) for the session, so JupyterLab's static files stay cached."
    ctx = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    yield ctx
    ctx.close()


@pytest.fixture
def nb(request, lab, browser_context):
    "A `Notebook` driver on a fresh browser page; records page dialogs and errors; screenshot on failure."
    page = browser_context.new_page()
    page.set_default_timeout(30_000)
    drv = Notebook(page, lab)
    yield drv
    rep = request.node.stash.get(_REPORT, None)
    if rep is not None and rep.failed:
        SHOTS.mkdir(parents=True, exist_ok=True)
        try: page.screenshot(path=str(SHOTS/f"FAILED-{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)}.png"))
        except Exception: pass
    page.close()
    try: lab.shutdown_kernels()
    except Exception: pass
