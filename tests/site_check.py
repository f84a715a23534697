"""Open every page of the built book in headless Chromium and check what a reader would see.

    python tests/site_check.py docs/_build/html      (or: nox -s browser)

Checks, page by page: no JavaScript error in the console; all math typeset by MathJax (no
raw `\\(`, `$$` or un-rendered math elements left); every image loaded; every internal link and
anchor resolves; every executable page has Colab and Binder launch links to its `.ipynb`,
which is committed. Then the site search must find pages for `vmap`. The browser runs offline,
so a page that needs the network (a CDN script, a web font) fails here as it would for a reader
without internet.

Uses the system Chromium and ChromeDriver (Debian: `apt-get install chromium chromium-driver`;
GitHub runners: Google Chrome), never a browser downloaded at run time. Set `CHROME_BINARY` and
`CHROMEDRIVER` to use others. Exits 1 listing every failure, 0 with a table of what was checked.
"""

import argparse
import collections
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
REPO = "jax-genai-science/jax-genai-book"
SKIPPED = {"genindex.html", "search.html", "py-modindex.html"}
MATH_TIMEOUT_S = 30.0

# Runs in the page: waits for MathJax, then reports what the checks need.
PAGE_REPORT = r"""
const done = arguments[arguments.length - 1];
const loaded = new Promise(resolve => {
  const poll = () => document.readyState === "complete" ? resolve() : setTimeout(poll, 50);
  poll();
});
loaded.then(() => {
  const mj = window.MathJax;
  return (mj && mj.startup && mj.startup.promise) ? mj.startup.promise : null;
}).then(() => {
  const article = document.querySelector("article") || document.body;
  done({
    mathjax: !!(window.MathJax && MathJax.startup),
    math_nodes: document.querySelectorAll(".math").length,
    typeset: document.querySelectorAll(".math mjx-container, mjx-container.MathJax").length,
    raw_math: (article.innerText.match(/\\\(|\\\[|\$\$/g) || []).length,
    broken_images: [...document.images]
      .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src")),
    images: document.images.length,
    links: [...document.querySelectorAll("a[href]")].map(a => a.getAttribute("href")),
    ids: [...document.querySelectorAll("[id]")].map(e => e.id),
  });
}).catch(e => done({error: String(e)}));
"""
# Console entries that fail a page: uncaught exceptions and resources that did not load.
# `console.error` calls by the theme (e.g. on an empty colour-mode setting) are counted only.
FAILING_SOURCES = ("javascript", "network")


def _find(env: str, *candidates: str) -> str:
    for c in [os.environ.get(env, ""), *candidates]:
        found = c and (shutil.which(c) or (Path(c).is_file() and c))
        if found:
            return str(found)
    sys.exit(
        f"site check: no {' / '.join(candidates)} found. Install Debian's `chromium` and "
        f"`chromium-driver` (or set {env})."
    )


def _driver() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = _find("CHROME_BINARY", "chromium", "google-chrome", "chrome")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = os.path.join(os.environ.get("CHROMEWEBDRIVER", ""), "chromedriver")
    service = Service(executable_path=_find("CHROMEDRIVER", "chromedriver", driver_path))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(MATH_TIMEOUT_S)
    return driver


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _executable_pages() -> dict[str, str]:
    """Built page (`jax/langevin.html`) -> its committed notebook (`docs/jax/langevin.ipynb`)."""
    docs = ROOT / "docs"
    return {
        str(p.relative_to(docs).with_suffix(".html")): str(
            p.relative_to(ROOT).with_suffix(".ipynb")
        )
        for p in docs.rglob("*.md")
        if "_build" not in p.parts and "{code-cell}" in p.read_text(encoding="utf-8")
    }


def _committed() -> set[str]:
    out = subprocess.run(
        ["git", "ls-files", "docs"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def _internal_target(site: Path, page: str, href: str) -> tuple[Path, str] | None:
    """The file and anchor an internal link points to (None for external links)."""
    parts = urllib.parse.urlsplit(href)
    if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
        return None
    path = urllib.parse.unquote(parts.path)
    target = (site / page).parent / path if path else site / page
    if target.is_dir():
        target = target / "index.html"
    return target.resolve(), parts.fragment


def check_site(site: Path, driver: webdriver.Chrome, base: str) -> tuple[list[str], dict]:
    failures: list[str] = []
    counts: collections.Counter = collections.Counter()
    pages = sorted(
        str(p.relative_to(site))
        for p in site.rglob("*.html")
        if p.name not in SKIPPED and not p.relative_to(site).parts[0].startswith("_")
    )
    executable, committed = _executable_pages(), _committed()
    ids_of: dict[Path, set[str]] = {}
    links_of: dict[str, list[str]] = {}
    for page in pages:
        driver.get(f"{base}/{page}")
        report = driver.execute_async_script(PAGE_REPORT)
        counts["pages"] += 1
        if "error" in report:
            failures.append(f"{page}: MathJax failed: {report['error']}")
            continue
        for entry in driver.get_log("browser"):
            if entry["level"] != "SEVERE":
                continue
            if entry.get("source") in FAILING_SOURCES:
                failures.append(f"{page}: {entry['source']} error: {entry['message'][:300]}")
            counts["console errors (failing)"] += entry.get("source") in FAILING_SOURCES
            counts["console.error messages (reported)"] += entry.get("source") == "console-api"
        if report["math_nodes"]:
            counts["pages with math"] += 1
            counts["math elements typeset"] += report["typeset"]
            if not report["mathjax"]:
                failures.append(f"{page}: has math but MathJax did not load")
            elif report["typeset"] < report["math_nodes"]:
                n, typeset = report["math_nodes"], report["typeset"]
                failures.append(f"{page}: {n} math elements, only {typeset} typeset")
        if report["raw_math"]:
            failures.append(f"{page}: {report['raw_math']} raw TeX delimiters left in the text")
        counts["images"] += report["images"]
        failures += [f"{page}: image did not load: {src}" for src in report["broken_images"]]
        ids_of[(site / page).resolve()] = set(report["ids"])
        links_of[page] = report["links"]
        if page in executable:
            counts["executable pages"] += 1
            notebook = executable[page]
            launch = {
                "Colab": f"https://colab.research.google.com/github/{REPO}/blob/main/{notebook}",
                "Binder": f"https://mybinder.org/v2/gh/{REPO}/main?urlpath=lab/tree/{notebook}",
            }
            for kind, url in launch.items():
                if url not in report["links"]:
                    failures.append(f"{page}: no {kind} launch link to {notebook}")
            if notebook not in committed:
                failures.append(f"{page}: its notebook {notebook} is not committed")
            counts["launch links checked"] += 2
    for page, hrefs in links_of.items():
        for href in hrefs:
            target = _internal_target(site, page, href)
            if target is None:
                continue
            counts["internal links"] += 1
            path, anchor = target
            if not path.is_file():
                failures.append(f"{page}: broken link {href}")
            elif anchor and path.suffix == ".html":
                if path not in ids_of:
                    ids_of[path] = set()  # a skipped page (genindex, ...): anchors not checked
                    continue
                if ids_of[path] and anchor not in ids_of[path]:
                    failures.append(f"{page}: link {href} names a missing anchor")
    driver.get(f"{base}/search.html?q=vmap")
    try:  # Sphinx's search adds results one by one, then says it has finished
        WebDriverWait(driver, 30).until(
            lambda d: "did not match" in d.page_source or "Search finished" in d.page_source
        )
        hits = len(driver.find_elements(By.CSS_SELECTOR, "#search-results li"))
    except TimeoutException:
        hits = 0
    counts["search hits for 'vmap'"] = hits
    if not hits:
        failures.append("search.html?q=vmap: the site search found nothing")
    return failures, dict(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, nargs="?", default=ROOT / "docs" / "_build" / "html")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        sys.exit(f"site check: {args.site} holds no built book; run `nox -s docs` first")
    server, base = _serve(args.site)
    driver = _driver()
    try:
        failures, counts = check_site(args.site, driver, base)
    finally:
        driver.quit()
        server.shutdown()
    for line in failures:
        print(f"FAIL {line}")
    width = max(map(len, counts))
    for name, n in counts.items():
        print(f"  {name:<{width}}  {n}")
    print(f"site check: {len(failures)} failure(s) on {counts.get('pages', 0)} pages")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
