"""Keep executed outputs working offline: drop the CDN stylesheets some outputs link to.

Matplotlib's `Animation.to_jshtml()` links Font Awesome 4 from a CDN for its player buttons.
Offline (a laptop, a cluster, the build machine) that request fails and the buttons lose their
icons. The book's theme already ships Font Awesome, which renders the same `fa fa-play` icons,
so the link is removed from every HTML output.
"""

import re

from docutils import nodes
from sphinx.application import Sphinx

CDN_STYLESHEET = re.compile(
    r'<link rel="stylesheet"\s+href="https://maxcdn\.bootstrapcdn\.com/font-awesome/[^"]*">\s*'
)


def drop_cdn_stylesheets(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for raw in list(doctree.findall(nodes.raw)):
        if "html" not in raw.get("format", "").split():
            continue
        text = raw.astext()
        cleaned = CDN_STYLESHEET.sub("", text)
        if cleaned != text:
            raw.replace_self(nodes.raw("", cleaned, format=raw["format"]))


def setup(app: Sphinx) -> dict:
    app.connect("doctree-resolved", drop_cdn_stylesheets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
