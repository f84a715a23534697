"""Make the reference pages' doctrees small again: re-home nodes parsed in nested documents.

sphinx-autodoc2 parses each docstring into a document of its own and moves the nodes into the
page. Those nodes keep a reference to their nested document, whose settings hold Sphinx's whole
build environment, which Sphinx strips only from a page's own document before saving it. Each
reference page's doctree then pickles the environment with it (6-8 MB instead of ~0.2 MB), and
Sphinx loads every doctree several times during a build. Pointing the nodes at the page's
document, as a nested parse into the page itself would have, drops that copy.
"""

from docutils import nodes
from sphinx.application import Sphinx


def adopt_nested_nodes(app: Sphinx, doctree: nodes.document) -> None:
    for node in doctree.findall():
        nested = node.__dict__.get("_document")
        if nested is not None and nested is not doctree:
            node.document = doctree


def setup(app: Sphinx) -> dict:
    app.connect("doctree-read", adopt_nested_nodes)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
