"""The built documentation site (`make docs`) in headless Chromium: every page loads its
images and diagrams, typesets its mathematics, and logs no errors to the console.

The test builds nothing: it reads site/ as `mkdocs build` left it, and skips when there is
none. It needs selenium (the docs extra) and Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.docs

SITE = ROOT / "site"
GALLERY = ("fig1", "fig3", "hsb_1", "hsb_A", "hsb_B", "hsb_C")
MATH_TIMEOUT_S = 60


def _pages() -> list[str]:
    """Every page of the site, as its path relative to the site root ("" for the home page)."""
    if not SITE.is_dir():
        return []
    pages = []
    for index in sorted(SITE.rglob("index.html")):
        relative = index.parent.relative_to(SITE)
        if relative.parts and relative.parts[0] == "assets":
            continue
        pages.append("" if relative == Path(".") else relative.as_posix() + "/")
    return pages


PAGES = _pages()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site_url() -> Iterator[str]:
    """site/ served over HTTP on a free port, in a thread."""
    if not (SITE / "index.html").is_file():
        pytest.skip("site/ is not built: run `make docs` (or `mkdocs build`) first")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser(site_url: str) -> Iterator[Any]:
    """Headless Chromium driven by chromedriver, keeping the browser console's log."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("needs chromium and chromedriver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1024",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


# Images that did not load, and inline SVGs that are empty or drawn at no size while shown.
_BROKEN_GRAPHICS = """
const broken = [];
for (const img of document.querySelectorAll("img")) {
  if (!img.complete || img.naturalWidth === 0) {
    broken.push("img " + img.getAttribute("src").slice(0, 80));
  }
}
for (const svg of document.querySelectorAll("svg")) {
  const shown = svg.getClientRects().length > 0;
  const box = svg.getBoundingClientRect();
  if (svg.childElementCount === 0 || (shown && (box.width === 0 || box.height === 0))) {
    broken.push("svg " + (svg.id || svg.getAttribute("class") || svg.outerHTML.slice(0, 80)));
  }
}
return broken;
"""

# The math arithmatex marked, and how much of it MathJax has typeset (and with errors).
_MATH_STATE = """
const math = Array.from(document.querySelectorAll(".arithmatex"));
const typeset = math.filter(el => el.querySelector(".mjx-chtml, .MathJax_CHTML"));
const raw = math.filter(el => /\\\\[(\\[]/.test(el.innerText));
const errors = document.querySelectorAll(".mjx-merror, .MathJax_Error, .merror").length;
return [math.length, typeset.length, raw.map(el => el.innerText.slice(0, 60)), errors];
"""


def _math_state(driver: Any) -> tuple[int, int, list[str], int]:
    total, typeset, raw, errors = driver.execute_script(_MATH_STATE)
    return int(total), int(typeset), list(raw), int(errors)


def _wait_for_math(driver: Any) -> tuple[int, int, list[str], int]:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, MATH_TIMEOUT_S).until(
            lambda d: (lambda s: s[0] == s[1] and not s[2])(_math_state(d))
        )
    except TimeoutException:
        pass  # reported by the assertions below
    return _math_state(driver)


def test_site_has_every_section() -> None:
    if not PAGES:
        pytest.skip("site/ is not built: run `make docs` (or `mkdocs build`) first")
    for page in ("", "gallery/", "guide/cli/", "api/", "benchmarks/", "notebooks/01_quickstart/"):
        assert page in PAGES
    assert all(f"gallery/{name}/" in PAGES for name in GALLERY)
    assert sum(p.startswith("notebooks/") for p in PAGES) == 6


@pytest.mark.parametrize("page", PAGES or [None], ids=[p or "home" for p in PAGES] or ["site"])
def test_page_renders_in_a_browser(page: str | None, site_url: str, browser: Any) -> None:
    if page is None:
        pytest.skip("site/ is not built: run `make docs` (or `mkdocs build`) first")
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what earlier pages left
    browser.get(site_url + page)
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    total, typeset, raw, errors = _wait_for_math(browser)
    broken = browser.execute_script(_BROKEN_GRAPHICS)
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]

    assert not broken, f"{page}: graphics that did not load: {broken}"
    assert not raw, f"{page}: math left as TeX source: {raw}"
    assert typeset == total, f"{page}: {total - typeset} of {total} formulas not typeset"
    assert errors == 0, f"{page}: {errors} MathJax errors"
    assert not severe, f"{page}: browser console errors: {severe}"
    if page.startswith("gallery/") and page != "gallery/":
        assert total > 0, f"{page}: no equations"
        diagrams = browser.execute_script(
            "return Array.from(document.querySelectorAll('img'))"
            ".filter(i => i.src.includes('/diagrams/') && i.naturalWidth > 0).length"
        )
        assert diagrams == 1, f"{page}: the path diagram is missing"
