"""sphinx-autodoc2's MyST renderer, without two pieces of noise in the library reference.

* A class's entry gets an "Initialization" heading whenever the class has an ``__init__``,
  with or without a docstring to put under it. Most of the book's classes are dataclasses
  (``eqx.Module``, ``NamedTuple``) whose generated ``__init__`` has none, or only Python's
  "Initialize self.  See help(type(self)) for accurate signature.": such an ``__init__`` is
  left out, so the heading appears only over a real docstring.
* An attribute whose value the analyser cannot read as a constant (a field with no default,
  ``eqx.field(...)``) is written with the value ``None``, which the page then shows as the
  attribute's description. Such attributes are written without a value.
"""

from collections.abc import Iterable

from autodoc2.render.myst_ import MystRenderer
from autodoc2.utils import ItemData

PLACEHOLDER = "Initialize self.  See help(type(self)) for accurate signature."


class ReferenceRenderer(MystRenderer):
    def render_class(self, item: ItemData) -> Iterable[str]:
        lines = list(super().render_class(item))
        init = self.get_item(f"{item['full_name']}.__init__")
        doc = " ".join(((init or {}).get("doc") or "").split())
        directive = f"```{{autodoc2-docstring}} {item['full_name']}.__init__"
        if doc not in ("", " ".join(PLACEHOLDER.split())) or directive not in lines:
            yield from lines
            return
        # The heading, a blank line, the docstring directive and its closing fence.
        start = lines.index(directive) - 3
        end = lines.index("```", start + 3)
        if lines[start] != "```{rubric} Initialization":
            yield from lines  # autodoc2 changed its layout: leave it be
            return
        yield from lines[:start]
        yield from lines[end + 2 :]  # after the closing fence and the blank line after it

    def render_data(self, item: ItemData) -> Iterable[str]:
        lines = super().render_data(item)
        if item.get("value") is not None:
            yield from lines
            return
        skip_value = False
        for line in lines:
            if line == ":value: >":
                skip_value = True  # and the line after it, the value itself
            elif skip_value:
                skip_value = False
            else:
                yield line
