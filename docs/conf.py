"""Sphinx configuration for *JAX and Generative AI for Science*."""

import os
import sys
from pathlib import Path

import astroid

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "JAX and Generative AI for Science"
author = "The JAX and Generative AI for Science authors"
copyright = "2026, " + author

# One place names the repository: launch buttons, the Colab setup cells and the README use it.
REPOSITORY_URL = "https://github.com/jax-genai-science/jax-genai-book"

extensions = [
    "myst_nb",
    "sphinx_design",
    "sphinx_copybutton",
    "sphinxcontrib.bibtex",
    "sphinx_exercise",
    # MathJax 3 copied into _static: math renders without a CDN, e.g. on a laptop offline.
    "sphinx-mathjax-offline",
    # The library reference, read from the source (nothing imported) with Markdown docstrings.
    "autodoc2",
    # Inline `names` of the library in page prose link to their reference entries.
    "library_links",
    # Executed outputs that link a CDN stylesheet (matplotlib animations) work offline.
    "offline_outputs",
    # The reference pages' doctrees stay small (sphinx-autodoc2 leaves nested documents in them).
    "nested_documents",
    # Links to the documentation of JAX, NumPy, Equinox and Diffrax (see intersphinx_mapping).
    "sphinx.ext.intersphinx",
]

# --- library reference (docs/reference/) ------------------------------------------------------
autodoc2_packages = [{"path": "../tutorial_lib", "auto_mode": False}]
autodoc2_docstring_parser_regexes = [(r".*", "myst")]
# MyST, less two kinds of noise (an empty "Initialization" heading, "None" as a description).
autodoc2_render_plugin = "reference_renderer.ReferenceRenderer"
# A module's reference shows what its `__all__` exports, nothing private.
autodoc2_module_all_regexes = [r"tutorial_lib(\..*)?"]
autodoc2_hidden_objects = ["private", "dunder", "inherited"]
# The reference pages' "On this page" lists modules and sections, not every function: with ~400
# entries, Sphinx copied those lists into every page's sidebar navigation (5 s of each build).
toc_object_entries = False
# autodoc2 reads the library's source with astroid, which follows imports into the libraries it
# uses (JAX, PyTorch, ...) to work out what classes inherit; inherited members are hidden above,
# so astroid skips those libraries: the same pages, 4 s less of every build.
astroid.MANAGER.module_denylist.update(
    "jax numpy scipy jaxtyping equinox optax diffrax lineax numpyro blackjax torch transformers "
    "safetensors huggingface_hub pooch platformdirs h5py skimage matplotlib PIL py3Dmol".split()
)

# --- intersphinx: links to the documentation of the libraries the book uses --------------------
# Each project's committed inventory in _intersphinx/ is read first, so the build works offline
# (when it loads, the online objects.inv is not fetched). They are generated stand-ins for the
# real objects.inv: `python _intersphinx/make_inventories.py` (with --download when online).
intersphinx_mapping = {
    "jax": ("https://docs.jax.dev/en/latest/", ("_intersphinx/jax.inv", None)),
    "numpy": ("https://numpy.org/doc/stable/", ("_intersphinx/numpy.inv", None)),
    "equinox": ("https://docs.kidger.site/equinox/", ("_intersphinx/equinox.inv", None)),
    "diffrax": ("https://docs.kidger.site/diffrax/", ("_intersphinx/diffrax.inv", None)),
    "jaxtyping": ("https://docs.kidger.site/jaxtyping/", ("_intersphinx/jaxtyping.inv", None)),
    "optax": ("https://optax.readthedocs.io/en/latest/", ("_intersphinx/optax.inv", None)),
    "python": ("https://docs.python.org/3/", ("_intersphinx/python.inv", None)),
}
# jaxtyping's shape strings (`Float[Array, "batch dim"]`) reach the reference as their parts:
# the axis names ("batch", "dim", "L-2") and type variables are not objects to link.
# A subscripted annotation (`jaxtyping.Float[jaxtyping.Array, n d]`) is one unresolvable target;
# its parts are linked where they can be.
nitpick_ignore_regex = [
    ("py:class", r"[^.]*"),
    ("py:obj", r"[^.]*"),
    ("py:class", r".*\[.*"),
    # Type variables of generic signatures (`pick(cpu: Value, gpu: Value) -> Value`).
    ("py:class", r"tutorial_lib\..*\.Value"),
    # NumPy documents its typing aliases as data, which a class reference does not find.
    ("py:class", r"numpy\.typing\..*"),
]

# The .ipynb files are jupytext pairs of the .md pages: committed for Colab/Binder, never built.
exclude_patterns = ["_build", "**.ipynb_checkpoints", "**.ipynb", "README.md", "jupyter_execute"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

myst_enable_extensions = [
    "amsmath",
    "colon_fence",
    "deflist",
    "dollarmath",
    "fieldlist",
    "substitution",
]
myst_heading_anchors = 3

# --- execution: every page runs at build time, cached by jupyter-cache -------------------------
nb_execution_mode = os.environ.get("JAXGENAI_NB_EXECUTION_MODE", "cache")
nb_execution_cache_path = os.path.join(os.path.dirname(__file__), "_build", ".jupyter_cache")
nb_execution_timeout = 180  # seconds per cell: a page must run in <= 3 min on a 2-core CPU
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_execution_excludepatterns: list[str] = []

# --- bibliography -----------------------------------------------------------------------------
# One file per part of the book (references.bib, references-diffusion.bib, ...).
bibtex_bibfiles = sorted(p.name for p in Path(__file__).parent.glob("references*.bib"))
bibtex_reference_style = "author_year"
bibtex_default_style = "plain"

# --- HTML -------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
html_css_files = ["custom.css"]
html_theme_options = {
    "repository_url": REPOSITORY_URL,
    "repository_branch": "main",
    "path_to_docs": "docs",
    "use_repository_button": True,
    "use_issues_button": True,
    "use_edit_page_button": False,
    "use_download_button": True,
    "show_toc_level": 2,
    "launch_buttons": {
        "notebook_interface": "jupyterlab",
        "colab_url": "https://colab.research.google.com",
        "binderhub_url": "https://mybinder.org",
        # A JupyterHub (e.g. Nebari) gets launch buttons when its URL is given at build time:
        #   JAXGENAI_JUPYTERHUB_URL=https://hub.example.org nox -s docs
        "jupyterhub_url": os.environ.get("JAXGENAI_JUPYTERHUB_URL", ""),
    },
}

copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_exclude = ".linenos, .gp, .go"

nitpicky = False
