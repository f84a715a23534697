"""The importable, tested library behind *JAX and Generative AI for Science*.

Every page of the book imports from here, so what a reader sees on a page is the same
function the test suite checks.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
