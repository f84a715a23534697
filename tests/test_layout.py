"""The library mirrors the book: one subpackage per part, pages import from their part's."""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "tutorial_lib"
# speed_claims re-measures every part's speed claims for the back matter's Benchmarks page.
INFRASTRUCTURE = {"config", "artifacts", "benchmark", "check_setup", "speed_claims"}
PART_PACKAGE = {
    "jax": "jax_science",
    "diffusion": "diffusion",
    "protein": "protein",
    "generative": "generative",
}
# The tiny-ESM2 chapter shows its own trainer's step and data pipeline.
EXCEPTIONS = {"protein/tiny-esm2.md": {"train"}}
PAGES = sorted(p for part in PART_PACKAGE for p in (ROOT / "docs" / part).glob("*.md"))


def _imported_modules(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            yield from ((a.name, []) for a in node.names)


def _page_code(page: Path) -> ast.AST:
    cells = re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", page.read_text(), re.M | re.S)
    lines = [re.sub(r"^(\s*)%.*", r"\1pass", line) for cell in cells for line in cell.split("\n")]
    return ast.parse("\n".join(line for line in lines if not re.match(r"^:[\w-]+:", line)))


def test_no_flat_top_level_module_but_the_infrastructure():
    flat = {p.stem for p in LIBRARY.glob("*.py")} - {"__init__"}
    assert flat == INFRASTRUCTURE


@pytest.mark.parametrize("page", PAGES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_pages_import_from_their_part_data_and_infrastructure(page):
    rel = f"{page.parent.name}/{page.name}"
    allowed = {PART_PACKAGE[page.parent.name], "data", *INFRASTRUCTURE, *EXCEPTIONS.get(rel, ())}
    used = set()
    for module, names in _imported_modules(_page_code(page)):
        if module == "tutorial_lib":
            used |= set(names)
        elif module.startswith("tutorial_lib."):
            used.add(module.split(".")[1])
    assert used, f"{rel} imports nothing from tutorial_lib"
    assert used <= allowed, f"{rel} imports from {sorted(used - allowed)}"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in LIBRARY.rglob("*.py") if not p.name.startswith("_") or p.stem == "__init__"),
    ids=lambda p: str(p.relative_to(LIBRARY)),
)
def test_public_modules_have_all_and_import_no_private_names(path):
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__"
    assert all(hasattr(module, n) for n in module.__all__), f"{name}.__all__ names a missing name"
    # A package's own private modules (`from tutorial_lib.protein import _http`) are fine; another
    # module's private names are not.
    package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and (node.level or node.module.startswith("tutorial_lib"))
        ):
            private = [
                a.name
                for a in node.names
                if re.match(r"_[^_]", a.name)
                and not (node.module == package and (path.parent / f"{a.name}.py").is_file())
            ]
            assert not private, f"{name} imports private names {private} from {node.module}"


@pytest.mark.parametrize(
    "path", sorted(LIBRARY.rglob("*.py")), ids=lambda p: str(p.relative_to(LIBRARY))
)
def test_one_import_style_absolute(path):
    relative = [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level
    ]
    assert not relative, f"{path.name}: relative imports on lines {relative}; import absolutely"
