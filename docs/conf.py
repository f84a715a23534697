"""Sphinx configuration for *JAX and Generative AI for Science*."""

import os
from pathlib import Path

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
]

# The .ipynb files are jupytext pairs of the .md pages: committed for Colab/Binder, never built.
exclude_patterns = ["_build", "**.ipynb_checkpoints", "**.ipynb", "README.md", "jupyter_execute"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

myst_enable_extensions = ["amsmath", "colon_fence", "deflist", "dollarmath", "substitution"]
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
