"""The documentation site (`make docs` -> _site/) in Chromium: every page renders, its plots and tables are there, no
internal link is broken, and no HTML from model output is live.

The site is served from _site/ by a local http.server on 127.0.0.1 (a random port); requests to other hosts are
aborted, so a page that needs the network shows it here. scripts/test.sh builds the site first and sets
CAI_DOCS_REQUIRED=1, so a missing site fails there; elsewhere these tests skip with the reason.
What each page must show is read from the staged notebook it was built from (_docs_src/pages/<page>.ipynb): one <img> per
saved image output, one <table> at least per markdown or HTML table. Screenshots: test-artifacts/screenshots/docs-*.png.
"""
from __future__ import annotations

import functools, http.server, json, os, re, threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

from e2e_lab import REPO, SHOTS, VIEWPORT

pytestmark = pytest.mark.e2e
SITE, SRC = REPO/"_site", REPO/"_docs_src"/"pages"


def _pages():
    return sorted(p.stem for p in SRC.glob("*.ipynb")) + ["api"] if SRC.exists() else []


@pytest.fixture(scope="module")
def site():
    if not (SITE/"index.html").exists():
        msg = f"no docs site at {SITE}: run `make docs` first"
        if os.environ.get("CAI_DOCS_REQUIRED") == "1": pytest.fail(msg)
        pytest.skip(msg)
    handler = functools.partial(type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
                                directory=str(SITE))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()


@pytest.fixture
def page(browser, site):
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.route("**/*", lambda route: route.continue_() if route.request.url.startswith(site) or route.request.url.startswith("data:")
              else route.abort())
    pg = ctx.new_page(); pg.set_default_timeout(20_000)
    pg.dialogs, pg.errors = [], []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    ctx.close()


def expected(name: str) -> dict:
    "What the page built from _docs_src/pages/<name>.ipynb must show: image and table counts."
    if name == "api": return {"images": 0, "tables": 0}
    nb = json.loads((SRC/f"{name}.ipynb").read_text())
    imgs = tables = 0
    for c in nb["cells"]:
        if c["cell_type"] == "markdown" and re.search(r"^\|.*\|\s*\n\|\s*:?-{3,}", "".join(c["source"]), re.M): tables += 1
        for o in c.get("outputs", []):
            d = o.get("data", {})
            imgs += any(k.startswith("image/") for k in d)
            html = "".join(d.get("text/html", "")); md = "".join(d.get("text/markdown", ""))
            if "<table" in html or re.search(r"^\|.*\|\s*\n\|\s*:?-{3,}", md, re.M): tables += 1
    return {"images": imgs, "tables": min(tables, 1)}


@pytest.mark.parametrize("name", _pages())
def test_page_renders_with_its_outputs(page, site, name):
    url = urljoin(site, f"{name}.html")
    resp = page.goto(url, wait_until="load")
    assert resp and resp.ok, f"{url}: HTTP {resp.status if resp else 'no response'}"
    content = page.locator("article, .md-content").first
    assert content.locator("h1").count() >= 1, f"{name}.html has no H1 title"
    assert len(content.inner_text().strip()) > 200, f"{name}.html renders (almost) no text"
    want = expected(name)
    imgs = content.locator("img")
    assert imgs.count() >= want["images"], f"{name}.html shows {imgs.count()} images; its notebook saved {want['images']}"
    broken = page.evaluate("() => [...document.querySelectorAll('article img, .md-content img')]"
                           ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))")
    assert not broken, f"{name}.html: images that did not load: {broken}"
    if want["tables"]: assert content.locator("table").count() >= 1, f"{name}.html: its notebook has tables, the page none"
    # model text (e.g. '<script>alert(1)</script>' in the viewers' examples) is shown, never run
    assert not page.dialogs, f"{name}.html opened dialogs: {page.dialogs}"
    assert page.locator("article img[src='x'], .md-content img[src='x']").count() == 0, f"{name}.html: an <img src=x> is live"
    live = page.evaluate("() => [...document.querySelectorAll('.md-content script')].filter(s => /alert\\(/.test(s.textContent)).length")
    assert live == 0, f"{name}.html: a <script> from output text is live"
    assert not [e for e in page.errors if "alert" in e], f"{name}.html: {page.errors}"
    SHOTS.mkdir(parents=True, exist_ok=True); page.screenshot(path=str(SHOTS/f"docs-{name}.png"))


def test_escaped_model_text_is_visible_as_text(page, site):
    "The views page's example puts `<script>alert(...)</script>` in model text: the reader sees it literally."
    page.goto(urljoin(site, "views.html"), wait_until="load")
    assert "<script>alert(" in page.locator(".md-content").inner_text()
    assert not page.dialogs


def test_no_internal_link_is_broken(page, site):
    seen, broken = {}, []
    for name in _pages():
        page.goto(urljoin(site, f"{name}.html"), wait_until="domcontentloaded")
        hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        for href in hrefs:
            if not href.startswith(site): continue  # external links are not this site's to check
            path, frag = urldefrag(href)
            if path not in seen:
                r = page.request.get(path)
                seen[path] = (r.ok, r.text() if r.ok and path.endswith(".html") else "")
            ok, body = seen[path]
            if not ok: broken.append(f"{name}.html -> {href}")
            elif frag and body and not re.search(rf'id=["\']{re.escape(frag)}["\']', body): broken.append(f"{name}.html -> {href} (no #{frag})")
    assert not broken, "broken internal links:\n" + "\n".join(sorted(set(broken))[:60])


def test_docs_links_of_the_modules_resolve(page, site):
    "Each module docstring's `Docs: .../<page>.html.md` exists on the site, and so does <page>.html."
    import cai_workbench, pkgutil, importlib
    for m in pkgutil.iter_modules(cai_workbench.__path__):
        doc = importlib.import_module(f"cai_workbench.{m.name}").__doc__ or ""
        for url in re.findall(r"Docs: (\S+\.html\.md)", doc):
            rel = urlparse(url).path.split("/cai-workbench/", 1)[-1]
            for p in (rel, rel.removesuffix(".md")):
                assert page.request.get(urljoin(site, p)).ok, f"cai_workbench.{m.name}: Docs link {url} -> {p} is not on the site"
