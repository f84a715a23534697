"""Every executable page is paired with a committed .ipynb that is in sync and Colab-ready."""

import json
import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(
    p
    for p in DOCS.rglob("*.md")
    if "_build" not in p.parts and "{code-cell}" in p.read_text(encoding="utf-8")
)
FENCE = re.compile(r"^(`{3,}|~{3,})\{code-cell\}[^\n]*\n(.*?)^\1[ \t]*$", re.S | re.M)


def _code(notebook) -> list[str]:
    return [c.source.strip() for c in notebook.cells if c.cell_type == "code"]


def test_the_book_has_executable_pages():
    assert len(PAGES) >= 2, PAGES


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_is_paired_and_in_sync(page):
    paired = page.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} missing: run `nox -s notebooks`"
    md = jupytext.read(page)
    nb = jupytext.read(paired)
    assert md.metadata["jupytext"]["formats"] == "md:myst,ipynb"
    assert _code(md) == _code(nb), f"{page.name} and {paired.name} differ: run `nox -s notebooks`"
    # The committed notebook carries no outputs: the build executes the .md, Colab the .ipynb.
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_first_code_cell_sets_up_colab_and_is_hidden(page):
    first = next(c for c in jupytext.read(page).cells if c.cell_type == "code")
    assert '"google.colab" in sys.modules' in first.source
    assert "%pip install" in first.source
    assert "git+https://github.com/jax-genai-science/jax-genai-book@main" in first.source
    assert "remove-cell" in first.metadata.get("tags", [])


def _raw_md_cells(text: str) -> list[str]:
    """Code of each `{code-cell}` fence of a MyST page, options (`:tags:`, a YAML block) dropped."""
    cells = []
    for match in FENCE.finditer(text):
        lines = match.group(2).split("\n")
        if lines[0].strip() == "---":
            lines = lines[lines.index("---", 1) + 1 :]
        while lines and re.match(r"^:[\w-]+:", lines[0]):
            lines = lines[1:]
        cells.append("\n".join(lines).strip())
    return cells


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_pair_matches_without_jupytext(page):
    """The same check read straight from the files (JSON and the fences), not via jupytext."""
    notebook = json.loads(page.with_suffix(".ipynb").read_text(encoding="utf-8"))
    nb_cells = [
        "".join(c["source"]).strip() if isinstance(c["source"], list) else c["source"].strip()
        for c in notebook["cells"]
        if c["cell_type"] == "code"
    ]
    assert _raw_md_cells(page.read_text(encoding="utf-8")) == nb_cells
    assert "google.colab" in nb_cells[0] and "pip install" in nb_cells[0]
