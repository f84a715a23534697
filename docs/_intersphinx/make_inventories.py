#!/usr/bin/env python
"""Regenerate the intersphinx inventories in this folder (``*.inv``).

The book links to the documentation of JAX, NumPy, Equinox and Diffrax with
``sphinx.ext.intersphinx``. Intersphinx needs each project's ``objects.inv``, and the
machines that build the book have no internet. So ``docs/conf.py`` names two locations per
project: the file committed here, first, and the real ``objects.inv`` online, second.
Intersphinx uses the first location that loads, so with these files present it never goes
online (and were a later location to fail, that would only be logged at INFO level): the
book builds offline with ``sphinx-build -W``.

The committed files are *generated stand-ins* for the real ``objects.inv``: genuine Sphinx
inventories (version 2 format) listing the public API of the packages installed in the docs
environment, each object mapped to the page on which the project's real documentation has it.
Their header says where they came from: "Version: <installed version> (stand-in generated
from the installed package)".

* JAX and NumPy (Sphinx, autosummary): the names come from introspecting the installed
  modules; the page of each name follows from the layout of those projects' Sphinx sources
  (``_autosummary/<name>.html`` for JAX, ``reference/generated/<name>.html`` for NumPy, with
  the exceptions coded below). Names that introspection finds but the docs do not document
  are left out (the ``*_EXCLUDE`` sets).
* Equinox and Diffrax (mkdocs-material + mkdocstrings): their page layout cannot be derived by
  introspection, so ``EQUINOX_PAGES`` and ``DIFFRAX_PAGES`` copy their ``mkdocs.yml`` nav and
  the ``::: name`` blocks (with ``members:``) of their ``docs/api/*.md`` pages; introspection
  only decides which listed objects and members exist and their role.

The rules, exclusions and tables were checked against the documentation sources of
jax 0.10.2, numpy 2.4.6, equinox 0.13.8 and diffrax 0.7.2 (every generated JAX/NumPy URL
equals the page that the Sphinx sources of that version give the name). After upgrading one
of these packages, rerun this script: it reports names the Equinox/Diffrax tables list but the
package lacks; new JAX/NumPy names get the default page, so compare with the new docs.

Usage (with the docs environment, which has the packages installed)::

    python docs/_intersphinx/make_inventories.py             # regenerate the stand-ins
    python docs/_intersphinx/make_inventories.py --check     # print what the files hold
    python docs/_intersphinx/make_inventories.py --download  # online: fetch the real files

``--download`` replaces the stand-ins with the projects' real ``objects.inv`` (same file
names), for a machine that has internet.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import inspect
import io
import pkgutil
import platform
import posixpath
import sys
import types
import urllib.request
import warnings
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

# key: (file, project name, distribution, documentation root; objects.inv lives under it)
# docs/conf.py's intersphinx_mapping uses the same roots.
PROJECTS = {
    "jax": ("jax.inv", "JAX", "jax", "https://docs.jax.dev/en/latest/"),
    "numpy": ("numpy.inv", "NumPy", "numpy", "https://numpy.org/doc/stable/"),
    "equinox": ("equinox.inv", "Equinox", "equinox", "https://docs.kidger.site/equinox/"),
    "diffrax": ("diffrax.inv", "Diffrax", "diffrax", "https://docs.kidger.site/diffrax/"),
    "jaxtyping": ("jaxtyping.inv", "jaxtyping", "jaxtyping", "https://docs.kidger.site/jaxtyping/"),
    "optax": ("optax.inv", "Optax", "optax", "https://optax.readthedocs.io/en/latest/"),
    "python": ("python.inv", "Python", "pip", "https://docs.python.org/3/"),
}

# An entry: name -> (role, uri, priority); the domain is always "py".
Entries = dict[str, tuple[str, str, int]]


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def _names(text: str) -> set[str]:
    """The names in ``text``, separated by whitespace; ``#`` starts a comment."""
    return {name for line in text.splitlines() for name in line.split("#")[0].split()}


def _public_names(module: types.ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = dir(module)
    return sorted(n for n in set(names) if not n.startswith("_"))


def _role(obj: object) -> str:
    """The object type Sphinx's autodoc/autosummary would give a module member."""
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isroutine(obj):  # functions, builtins, jitted functions (method descriptors)
        return "function"
    return "data"  # e.g. ufunc objects, constants, dtype objects


def _members(module_name: str) -> list[tuple[str, object]]:
    module = importlib.import_module(module_name)
    out = []
    for name in _public_names(module):
        try:
            obj = getattr(module, name)
        except Exception:  # deprecated or lazily failing attributes
            continue
        out.append((f"{module_name}.{name}", obj))
    return out


def _write_inventory(path: Path, project: str, version: str, entries: Entries) -> None:
    """Write ``entries`` in the Sphinx inventory v2 format (what ``objects.inv`` holds)."""
    lines = []
    for name in sorted(entries):
        role, uri, priority = entries[name]
        if any(c.isspace() for c in name):
            raise ValueError(f"whitespace in name {name!r}")
        if uri.endswith(name):  # "$" abbreviates the name, as Sphinx writes it
            uri = uri[: -len(name)] + "$"
        lines.append(f"{name} py:{role} {priority} {uri} -")
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    body = zlib.compress(("\n".join(lines) + "\n").encode("utf-8"), 9)
    path.write_bytes(header.encode("utf-8") + body)


# ----------------------------------------------------------------------------------------
# JAX: https://docs.jax.dev/en/latest/ (Sphinx, autosummary into _autosummary/)
# ----------------------------------------------------------------------------------------

# Modules whose public names are listed (+ every distribution module jax.scipy.stats.<name>).
JAX_MODULES = _names("""
    jax jax.numpy jax.numpy.fft jax.numpy.linalg jax.random jax.lax jax.lax.linalg jax.nn
    jax.nn.initializers jax.tree jax.tree_util jax.sharding jax.dtypes jax.typing jax.debug
    jax.image jax.scipy.cluster.vq jax.scipy.fft jax.scipy.integrate jax.scipy.interpolate
    jax.scipy.linalg jax.scipy.ndimage jax.scipy.optimize jax.scipy.signal
    jax.scipy.sparse.linalg jax.scipy.spatial.transform jax.scipy.special jax.scipy.stats
""")
# Further module pages of the JAX API reference (module targets only, no members).
JAX_OTHER_MODULES = _names("""
    jax.ad_checkpoint jax.distributed jax.dlpack jax.example_libraries jax.export jax.extend
    jax.ffi jax.flatten_util jax.ops jax.profiler jax.ref jax.stages jax.test_util
""")
# Classes documented with ``.. autoclass::`` on their module's page, not in _autosummary/.
JAX_ON_MODULE_PAGE = _names("""
    jax.image.ResizeMethod
    jax.lax.AccuracyMode jax.lax.ConvDimensionNumbers jax.lax.ConvGeneralDilatedDimensionNumbers
    jax.lax.DotAlgorithm jax.lax.DotAlgorithmPreset jax.lax.DotDimensionNumbers jax.lax.FftType
    jax.lax.GatherDimensionNumbers jax.lax.GatherScatterMode jax.lax.Precision
    jax.lax.PrecisionLike jax.lax.RaggedDotDimensionNumbers jax.lax.RandomAlgorithm
    jax.lax.RoundingMethod jax.lax.ScatterDimensionNumbers jax.lax.Tolerance
    jax.lax.linalg.EigImplementation jax.lax.linalg.EighImplementation
    jax.sharding.Mesh jax.sharding.NamedSharding jax.sharding.PartitionSpec
    jax.sharding.Sharding jax.sharding.SingleDeviceSharding
""")
# Of those, type aliases at runtime that autodoc documents as classes.
JAX_CLASS_ROLE = _names("""
    jax.lax.ConvGeneralDilatedDimensionNumbers jax.lax.DotDimensionNumbers jax.lax.PrecisionLike
""")
# Public names without a page in the JAX documentation: left out. (So are the primitives,
# the names ending in _p, of jax.lax, jax.lax.linalg and jax.random.)
JAX_EXCLUDE = _names("""
    # jax: re-exports documented elsewhere, internals, configuration without a page
    jax.NamedSharding jax.P jax.Ref jax.Shard jax.ad jax.allow_f16_reductions jax.auto_pcast
    jax.checkpoint_policies jax.debug_key_reuse jax.effects_barrier jax.empty_ref
    jax.explain_cache_misses jax.float0 jax.free_ref jax.freeze jax.fwd_and_bwd jax.host_count
    jax.host_id jax.host_ids jax.jax2tf_associative_scan_reductions jax.legacy_prng_key
    jax.make_user_context jax.memory jax.new_ref jax.no_execution jax.numpy_dtype_promotion
    jax.remat jax.remove_size_one_mesh_axis_from_type jax.reshard jax.softmax_custom_jvp
    jax.thread_guard jax.threefry_partitionable jax.transfer_guard_device_to_device
    jax.transfer_guard_device_to_host jax.transfer_guard_host_to_device
    jax.debug.DebugEffect jax.debug.OrderedDebugEffect jax.debug.log
    jax.dtypes.extended jax.dtypes.finfo jax.dtypes.iinfo
    jax.lax.conv_general_permutations jax.lax.conv_general_shape_tuple jax.lax.conv_shape_tuple
    jax.lax.conv_transpose_shape_tuple jax.lax.create_token jax.lax.dce_sink jax.lax.dtype
    jax.lax.padtype_to_pads jax.lax.pcast jax.lax.reduce_window_shape_tuple
    jax.lax.shape_as_value
    # jax.numpy: constants, and the extra (ml_dtypes) scalar types
    jax.numpy.bfloat16 jax.numpy.bool jax.numpy.e jax.numpy.euler_gamma jax.numpy.float4_e2m1fn
    jax.numpy.float6_e2m3fn jax.numpy.float6_e3m2fn jax.numpy.float8_e3m4 jax.numpy.float8_e4m3
    jax.numpy.float8_e4m3b11fnuz jax.numpy.float8_e4m3fn jax.numpy.float8_e4m3fnuz
    jax.numpy.float8_e5m2 jax.numpy.float8_e5m2fnuz jax.numpy.float8_e8m0fnu jax.numpy.inf
    jax.numpy.int1 jax.numpy.int2 jax.numpy.int4 jax.numpy.nan jax.numpy.newaxis jax.numpy.pi
    jax.numpy.uint1 jax.numpy.uint2 jax.numpy.uint4
    jax.random.key_impl jax.scipy.special.bessel_jn
    jax.sharding.AbstractDevice jax.sharding.AbstractMesh jax.sharding.AxisType
    jax.sharding.ManualAxisType jax.sharding.auto_axes jax.sharding.explicit_axes
    jax.sharding.get_abstract_mesh jax.sharding.get_mesh jax.sharding.make_single_device_sharding
    jax.sharding.reshard jax.sharding.set_mesh jax.sharding.use_abstract_mesh
    jax.tree_util.DictKey jax.tree_util.FlattenedIndexKey jax.tree_util.GetAttrKey
    jax.tree_util.PyTreeDef jax.tree_util.SequenceKey jax.tree_util.default_registry
""")


def _jax_module_page(module: str) -> str:
    if module.startswith("jax.scipy."):
        return "jax.scipy.html"
    if module in ("jax.numpy.fft", "jax.numpy.linalg"):
        return "jax.numpy.html"
    if module == "jax.lax.linalg":
        return "jax.lax.html"
    return f"{module}.html"


def jax_entries() -> Entries:
    import jax.scipy.stats

    modules = set(JAX_MODULES) | {
        f"jax.scipy.stats.{info.name}"
        for info in pkgutil.iter_modules(jax.scipy.stats.__path__)
        if not info.name.startswith("_")
    }
    entries: Entries = {m: ("module", f"{m}.html#module-{m}", 0) for m in JAX_OTHER_MODULES}
    for module in sorted(modules):
        if module != "jax":  # the API index (jax.html) declares no module target
            entries[module] = ("module", f"{_jax_module_page(module)}#module-{module}", 0)
        for name, obj in _members(module):
            role = _role(obj)
            if role == "module" or name in JAX_EXCLUDE:
                continue
            if module in ("jax.lax", "jax.lax.linalg", "jax.random") and name.endswith("_p"):
                continue
            if name in JAX_ON_MODULE_PAGE:
                role = "class" if name in JAX_CLASS_ROLE else role
                uri = f"{_jax_module_page(module)}#{name}"
            else:
                uri = f"_autosummary/{name}.html#{name}"
            entries[name] = (role, uri, 1)
    return entries


# ----------------------------------------------------------------------------------------
# NumPy: https://numpy.org/doc/stable/ (Sphinx, autosummary into reference/generated/)
# ----------------------------------------------------------------------------------------

NUMPY_MODULE_PAGES = {
    "numpy": "reference/index.html",
    "numpy.char": "reference/routines.char.html",
    "numpy.ctypeslib": "reference/routines.ctypeslib.html",
    "numpy.dtypes": "reference/routines.dtypes.html",
    "numpy.exceptions": "reference/routines.exceptions.html",
    "numpy.fft": "reference/routines.fft.html",
    "numpy.lib": "reference/routines.lib.html",
    "numpy.linalg": "reference/routines.linalg.html",
    "numpy.ma": "reference/maskedarray.generic.html",
    "numpy.polynomial": "reference/routines.polynomials-package.html",
    "numpy.random": "reference/random/index.html",
    "numpy.rec": "reference/routines.rec.html",
    "numpy.strings": "reference/routines.strings.html",
    "numpy.testing": "reference/routines.testing.html",
    "numpy.typing": "reference/typing.html",
}
# numpy.<name> on reference/constants.html
NUMPY_CONSTANTS = _names("e euler_gamma inf nan newaxis pi")
# Scalar types (numpy.generic subclasses) are on reference/arrays.scalars.html; these aliases
# with ``.. attribute::``, the others with ``.. autoclass::``.
NUMPY_SCALAR_ALIASES = _names("""
    int8 int16 int32 int64 uint8 uint16 uint32 uint64 intp uintp
    float96 float128 complex192 complex256
""")
# Public names and class members without a page in the NumPy reference: left out.
NUMPY_EXCLUDE = _names("""
    numpy.False_ numpy.True_ numpy.ScalarType numpy.abs numpy.bitwise_not numpy.index_exp
    numpy.little_endian numpy.row_stack numpy.sctypeDict numpy.test numpy.typecodes
    numpy.ndarray.__dlpack__ numpy.ndarray.__dlpack_device__ numpy.ndarray.conjugate
    numpy.ndarray.device numpy.ndarray.dot numpy.ndarray.mT numpy.ndarray.setfield
    numpy.ndarray.to_device numpy.random.RandomState.random numpy.random.RandomState.tomaxint
""")
# Special methods of numpy.ndarray that have a page of their own.
NUMPY_NDARRAY_DUNDERS = _names("""
    __abs__ __add__ __and__ __array__ __array_wrap__ __bool__ __class_getitem__ __complex__
    __contains__ __copy__ __deepcopy__ __divmod__ __eq__ __float__ __floordiv__ __ge__
    __getitem__ __gt__ __iadd__ __iand__ __ifloordiv__ __ilshift__ __imod__ __imul__ __int__
    __invert__ __ior__ __ipow__ __irshift__ __isub__ __itruediv__ __ixor__ __le__ __len__
    __lshift__ __lt__ __matmul__ __mod__ __mul__ __ne__ __neg__ __new__ __or__ __pos__ __pow__
    __reduce__ __repr__ __rshift__ __setitem__ __setstate__ __str__ __sub__ __truediv__ __xor__
""")
# numpy.random names outside reference/random/generated/ (the legacy functions' place)
NUMPY_RANDOM_PAGES = {
    "numpy.random.Generator": "reference/random/generator.html",
    "numpy.random.default_rng": "reference/random/generator.html",
    "numpy.random.RandomState": "reference/random/legacy.html",
    "numpy.random.BitGenerator": "reference/random/bit_generators/generated/$.html",
    "numpy.random.SeedSequence": "reference/random/bit_generators/generated/$.html",
    "numpy.random.MT19937": "reference/random/bit_generators/mt19937.html",
    "numpy.random.PCG64": "reference/random/bit_generators/pcg64.html",
    "numpy.random.PCG64DXSM": "reference/random/bit_generators/pcg64dxsm.html",
    "numpy.random.Philox": "reference/random/bit_generators/philox.html",
    "numpy.random.SFC64": "reference/random/bit_generators/sfc64.html",
}
NUMPY_TYPING = {"ArrayLike": "data", "DTypeLike": "data", "NDArray": "data", "NBitBase": "class"}


def _class_member_role(cls: type, name: str) -> str:
    attr = inspect.getattr_static(cls, name)
    if isinstance(attr, (classmethod, staticmethod)) or inspect.isroutine(attr):
        return "method"
    return "attribute"


def numpy_entries() -> Entries:
    import numpy as np

    entries: Entries = {}
    for module in ("numpy", "numpy.fft", "numpy.linalg", "numpy.random", "numpy.typing"):
        entries[module] = ("module", f"{NUMPY_MODULE_PAGES[module]}#module-{module}", 0)
    for name, obj in _members("numpy") + _members("numpy.fft") + _members("numpy.linalg"):
        short = name.rsplit(".", 1)[1]
        role = _role(obj)
        if name in NUMPY_EXCLUDE:
            continue
        if role == "module":
            if name in NUMPY_MODULE_PAGES:
                entries[name] = ("module", f"{NUMPY_MODULE_PAGES[name]}#module-{name}", 0)
        elif name.count(".") == 1 and short in NUMPY_CONSTANTS:
            entries[name] = ("data", f"reference/constants.html#{name}", 1)
        elif (
            name.count(".") == 1
            and inspect.isclass(obj)
            and issubclass(obj, np.generic)
            and name != "numpy.record"  # which has a page of its own
        ):
            role = "attribute" if short in NUMPY_SCALAR_ALIASES else "class"
            entries[name] = (role, f"reference/arrays.scalars.html#{name}", 1)
        else:
            entries[name] = (role, f"reference/generated/{name}.html#{name}", 1)
    for name, obj in _members("numpy.random"):
        role = _role(obj)
        if role != "module":
            page = NUMPY_RANDOM_PAGES.get(name, "reference/random/generated/$.html")
            entries[name] = (role, f"{page.replace('$', name)}#{name}", 1)
    # methods and attributes of these classes have a page each
    for cls, prefix, folder in (
        (np.ndarray, "numpy.ndarray", "reference/generated"),
        (np.random.Generator, "numpy.random.Generator", "reference/random/generated"),
        (np.random.RandomState, "numpy.random.RandomState", "reference/random/generated"),
    ):
        for member in sorted(vars(cls)):
            name = f"{prefix}.{member}"
            if name in NUMPY_EXCLUDE or (
                member.startswith("_")
                and (cls is not np.ndarray or member not in NUMPY_NDARRAY_DUNDERS)
            ):
                continue
            entries[name] = (_class_member_role(cls, member), f"{folder}/{name}.html#{name}", 1)
    for short, role in NUMPY_TYPING.items():
        name = f"numpy.typing.{short}"
        entries[name] = (role, f"reference/typing.html#{name}", 1)
    return entries


# ----------------------------------------------------------------------------------------
# Equinox and Diffrax: mkdocs-material + mkdocstrings
# ----------------------------------------------------------------------------------------
# page (as mkdocs serves it: use_directory_urls) -> the objects of its ``::: name`` blocks,
# each with the members its ``options: members:`` list shows. Copied from docs/api/*.md and
# the nav of mkdocs.yml in github.com/patrick-kidger/{equinox,diffrax} (tags v0.13.8 and
# v0.7.2; the same at their main branches). mkdocstrings registers each rendered heading as
# ``py:<role> 1 <page>#<full.name>``; the roles it uses (mkdocstrings-python 1.16.8, pinned by
# both projects): class, function (also for methods, so cite them with :py:func: or :py:obj:,
# not :py:meth:), attr (class attributes), data (module attributes).

EQUINOX_PAGES = {
    "api/module/module/": ["equinox.Module"],
    "api/module/advanced_fields/": [
        "equinox.field",
        "equinox.AbstractVar",
        "equinox.AbstractClassVar",
        "equinox.module_update_wrapper",
    ],
    "api/nn/linear/": [
        "equinox.nn.Linear __init__ __call__",
        "equinox.nn.Identity __init__ __call__",
    ],
    "api/nn/conv/": [
        "equinox.nn.Conv __init__ __call__",
        "equinox.nn.ConvTranspose __init__ __call__",
        "equinox.nn.Conv1d __init__",
        "equinox.nn.Conv2d __init__",
        "equinox.nn.Conv3d __init__",
        "equinox.nn.ConvTranspose1d __init__",
        "equinox.nn.ConvTranspose2d __init__",
        "equinox.nn.ConvTranspose3d __init__",
    ],
    "api/nn/rnn/": [
        "equinox.nn.GRUCell __init__ __call__",
        "equinox.nn.LSTMCell __init__ __call__",
    ],
    "api/nn/attention/": [
        "equinox.nn.MultiheadAttention __init__ __call__",
        "equinox.nn.RotaryPositionalEmbedding __init__ __call__",
    ],
    "api/nn/activations/": ["equinox.nn.PReLU __init__ __call__"],
    "api/nn/pool/": [
        f"equinox.nn.{name} __init__ __call__"
        for name in (
            "Pool",
            "AvgPool1d",
            "AvgPool2d",
            "AvgPool3d",
            "MaxPool1d",
            "MaxPool2d",
            "MaxPool3d",
            "AdaptivePool",
            "AdaptiveAvgPool1d",
            "AdaptiveAvgPool2d",
            "AdaptiveAvgPool3d",
            "AdaptiveMaxPool1d",
            "AdaptiveMaxPool2d",
            "AdaptiveMaxPool3d",
        )
    ],
    "api/nn/dropout/": ["equinox.nn.Dropout __init__ __call__"],
    "api/nn/normalisation/": [
        f"equinox.nn.{name} __init__ __call__"
        for name in ("LayerNorm", "RMSNorm", "GroupNorm", "BatchNorm", "SpectralNorm", "WeightNorm")
    ],
    # RotaryPositionalEmbedding is also on api/nn/attention/; mkdocs renders pages in
    # alphabetical order and the later registration (this page) wins in objects.inv.
    "api/nn/embedding/": [
        "equinox.nn.Embedding __init__ __call__",
        "equinox.nn.RotaryPositionalEmbedding __init__ __call__",
    ],
    "api/nn/mlp/": ["equinox.nn.MLP __init__ __call__"],
    "api/nn/sequential/": [
        "equinox.nn.Sequential __init__ __call__",
        "equinox.nn.Lambda __init__ __call__",
        "equinox.nn.StatefulLayer is_stateful",
    ],
    "api/nn/inference/": ["equinox.nn.inference_mode"],
    "api/nn/shared/": ["equinox.nn.Shared __init__ __call__"],
    "api/nn/stateful/": [
        "equinox.nn.make_with_state",
        "equinox.nn.StateIndex __init__",
        "equinox.nn.State get set substate update",
    ],
    "api/transformations/": [
        "equinox.filter_jit",
        "equinox.filter_make_jaxpr",
        "equinox.filter_eval_shape",
        "equinox.filter_shard",
        "equinox.filter_grad",
        "equinox.filter_value_and_grad",
        "equinox.filter_jvp",
        "equinox.filter_vjp",
        "equinox.filter_jacfwd",
        "equinox.filter_jacrev",
        "equinox.filter_hessian",
        "equinox.filter_custom_jvp def_jvp",
        "equinox.filter_custom_vjp def_fwd def_bwd",
        "equinox.filter_checkpoint",
        "equinox.filter_closure_convert",
        "equinox.filter_vmap",
        "equinox.filter_pmap",
        "equinox.filter_pure_callback",
    ],
    "api/manipulation/": [
        "equinox.filter",
        "equinox.is_array",
        "equinox.is_array_like",
        "equinox.is_inexact_array",
        "equinox.is_inexact_array_like",
        "equinox.partition",
        "equinox.combine",
        "equinox.apply_updates",
        "equinox.tree_at",
        "equinox.tree_equal",
        "equinox.Partial __init__ __call__",
        "equinox.tree_flatten_one_level",
        "equinox.tree_check",
    ],
    "api/caches/": ["equinox.clear_caches"],
    "api/debug/": [
        "equinox.debug.announce_transform",
        "equinox.debug.backward_nan",
        "equinox.debug.breakpoint_if",
        "equinox.debug.store_dce",
        "equinox.debug.inspect_dce",
        "equinox.debug.assert_max_traces",
        "equinox.debug.get_num_traces",
    ],
    "api/enumerations/": ["equinox.Enumeration where promote"],
    "api/errors/": ["equinox.error_if", "equinox.branched_error_if"],
    "api/pretty-printing/": ["equinox.tree_pprint", "equinox.tree_pformat"],
    "api/serialisation/": [
        "equinox.tree_serialise_leaves",
        "equinox.tree_deserialise_leaves",
        "equinox.default_serialise_filter_spec",
        "equinox.default_deserialise_filter_spec",
    ],
}

_INIT = "__init__"
DIFFRAX_PAGES = {
    "api/diffeqsolve/": ["diffrax.diffeqsolve"],
    "api/solvers/ode_solvers/": [
        f"diffrax.{name} {_INIT}"
        for name in (
            "Euler",
            "Heun",
            "Midpoint",
            "Ralston",
            "Bosh3",
            "Tsit5",
            "Dopri5",
            "Dopri8",
            "ImplicitEuler",
            "Kvaerno3",
            "Kvaerno4",
            "Kvaerno5",
            "Sil3",
            "KenCarp3",
            "KenCarp4",
            "KenCarp5",
            "SemiImplicitEuler",
            "ReversibleHeun",
            "LeapfrogMidpoint",
        )
    ],
    "api/solvers/sde_solvers/": [
        f"diffrax.{name} {_INIT}"
        for name in (
            "EulerHeun",
            "ItoMilstein",
            "StratonovichMilstein",
            "SEA",
            "SRA1",
            "ShARK",
            "GeneralShARK",
            "SlowRK",
            "SPaRK",
            "HalfSolver",
            "ALIGN",
            "ShOULD",
            "QUICSORT",
        )
    ],
    "api/solvers/abstract_solvers/": [
        "diffrax.AbstractSolver order strong_order error_order init step func",
        "diffrax.AbstractImplicitSolver",
        "diffrax.AbstractAdaptiveSolver",
        "diffrax.AbstractItoSolver",
        "diffrax.AbstractStratonovichSolver",
        "diffrax.AbstractWrappedSolver",
        "diffrax.AbstractRungeKutta",
        "diffrax.AbstractERK",
        "diffrax.AbstractDIRK",
        "diffrax.AbstractSDIRK",
        "diffrax.AbstractESDIRK",
        "diffrax.ButcherTableau __init__",
        "diffrax.CalculateJacobian",
        "diffrax.AbstractSRK",
        "diffrax.StochasticButcherTableau __init__",
        "diffrax.AbstractFosterLangevinSRK",
    ],
    "api/saveat/": ["diffrax.SaveAt __init__", "diffrax.SubSaveAt __init__"],
    "api/stepsize_controller/": [
        "diffrax.AbstractStepSizeController wrap init adapt_step_size",
        "diffrax.AbstractAdaptiveStepSizeController rtol atol norm",
        "diffrax.ConstantStepSize __init__",
        "diffrax.StepTo __init__",
        "diffrax.PIDController __init__",
        "diffrax.ClipStepSizeController __init__",
    ],
    "api/solution/": [
        # (the page also lists `message`, which diffrax.Solution does not have)
        "diffrax.Solution t0 t1 ts ys solver_state controller_state made_jump stats result"
        " evaluate derivative",
        "diffrax.RESULTS",
    ],
    "api/autocitation/": ["diffrax.citation"],
    "api/adjoints/": [
        "diffrax.AbstractAdjoint loop",
        "diffrax.RecursiveCheckpointAdjoint __init__",
        "diffrax.ForwardMode __init__",
        "diffrax.ImplicitAdjoint __init__",
        "diffrax.BacksolveAdjoint __init__",
        "diffrax.DirectAdjoint __init__",
        "diffrax.adjoint_rms_seminorm",
    ],
    "api/events/": ["diffrax.Event __init__", "diffrax.steady_state_event"],
    "api/terms/": [
        "diffrax.AbstractTerm vf contr prod vf_prod is_vf_expensive",
        "diffrax.ODETerm __init__",
        "diffrax.ControlTerm __init__ to_ode",
        "diffrax.MultiTerm __init__",
        "diffrax.UnderdampedLangevinDriftTerm __init__",
        "diffrax.UnderdampedLangevinDiffusionTerm __init__",
    ],
    "api/path/": ["diffrax.AbstractPath t0 t1 evaluate derivative"],
    "api/interpolation/": [
        "diffrax.LinearInterpolation __init__ evaluate derivative t0 t1",
        "diffrax.CubicInterpolation __init__ evaluate derivative t0 t1",
        "diffrax.linear_interpolation",
        "diffrax.rectilinear_interpolation",
        "diffrax.backward_hermite_coefficients",
    ],
    "api/brownian/": [
        "diffrax.AbstractBrownianPath evaluate",
        "diffrax.VirtualBrownianTree __init__ evaluate",
        "diffrax.UnsafeBrownianPath __init__ evaluate",
        "diffrax.AbstractBrownianIncrement",
        "diffrax.BrownianIncrement",
        "diffrax.AbstractSpaceTimeLevyArea",
        "diffrax.SpaceTimeLevyArea",
        "diffrax.AbstractSpaceTimeTimeLevyArea",
        "diffrax.SpaceTimeTimeLevyArea",
    ],
    "api/nonlinear_solver/": [
        "diffrax.VeryChord __init__",
        "diffrax.with_stepsize_controller_tols",
    ],
    "api/progress_meter/": [
        "diffrax.AbstractProgressMeter init step close",
        "diffrax.NoProgressMeter __init__",
        "diffrax.TextProgressMeter __init__",
        "diffrax.TqdmProgressMeter __init__",
    ],
}


def _resolve(name: str) -> object:
    module_name, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def _has_member(cls: type, member: str) -> str | None:
    """The mkdocstrings role of ``cls.member``, or None where the class has no such member."""
    for klass in inspect.getmro(cls):
        if member in vars(klass):
            attr = vars(klass)[member]
            if isinstance(attr, (classmethod, staticmethod)) or callable(attr):
                return "function"
            return "attr"  # properties, class attributes
        if member in getattr(klass, "__annotations__", {}):
            return "attr"  # dataclass fields, abstract attributes
    return None


def mkdocs_entries(pages: dict[str, list[str]], missing: list[str]) -> Entries:
    entries: Entries = {}
    for page, specs in pages.items():  # later pages win, as in mkdocstrings' objects.inv
        for spec in specs:
            name, *members = spec.split()
            try:
                obj = _resolve(name)
            except AttributeError:
                missing.append(name)
                continue
            role = "class" if inspect.isclass(obj) else "function" if callable(obj) else "data"
            entries[name] = (role, f"{page}#{name}", 1)
            for member in members:
                member_role = _has_member(obj, member) if inspect.isclass(obj) else None
                if member_role is None:
                    missing.append(f"{name}.{member}")
                    continue
                entries[f"{name}.{member}"] = (member_role, f"{page}#{name}.{member}", 1)
    return entries


# ----------------------------------------------------------------------------------------
# jaxtyping, Optax and the Python standard library: only the names the library's signatures
# use. jaxtyping documents its array annotations (Float, Int, Array, ...) in the prose of one
# page, api/array/, which its own objects.inv does not index: the stand-ins point there.
# ----------------------------------------------------------------------------------------

JAXTYPING_PAGES = {
    "api/array/": [
        *"Shaped Bool Num Inexact Float BFloat16 Float16 Float32 Float64 Complex Complex64".split(),
        *"Complex128 Integer UInt UInt8 UInt16 UInt32 UInt64 Int Int8 Int16 Int32 Int64".split(),
        *"Real Array ArrayLike Scalar ScalarLike Key PRNGKeyArray".split(),
    ],
    "api/pytree/": ["PyTree", "PyTreeDef"],
    "api/runtime-type-checking/": ["jaxtyped", "install_import_hook"],
}
OPTAX_PAGES = {
    "api/transformations.html": ["GradientTransformation", "OptState", "Params", "Updates"],
    "api/optimizers.html": ["adam", "adamw", "sgd"],
    "api/combining_optimizers.html": ["chain"],
    "api/optimizer_schedules.html": ["Schedule", "warmup_cosine_decay_schedule"],
}
PYTHON_NAMES = {
    "collections.abc": "Callable Iterable Iterator Mapping MutableMapping Sequence",
    "os": "PathLike",
    "pathlib": "Path",
    "typing": "Any Literal NamedTuple TypeVar Protocol",
    "dataclasses": "dataclass",
    "numbers": "Integral Real",
    "types": "ModuleType",
}


def simple_entries(module: str, pages: dict[str, list[str]]) -> Entries:
    entries: Entries = {}
    for page, names in pages.items():
        for name in names:
            obj = getattr(importlib.import_module(module), name)
            # Annotations (Float, PRNGKeyArray, optax.Params) are referenced as classes.
            role = "function" if inspect.isroutine(obj) else "class"
            entries[f"{module}.{name}"] = (role, f"{page}#{module}.{name}", 1)
    return entries


def python_entries() -> Entries:
    return {
        f"{module}.{name}": (
            _role(getattr(importlib.import_module(module), name)),
            f"library/{module}.html#{module}.{name}",
            1,
        )
        for module, names in PYTHON_NAMES.items()
        for name in names.split()
    }


# ----------------------------------------------------------------------------------------


def generate() -> None:
    warnings.simplefilter("ignore")  # deprecation warnings of attributes we touch
    for key, (filename, project, dist, _url) in PROJECTS.items():
        missing: list[str] = []
        if key == "jax":
            entries = jax_entries()
        elif key == "numpy":
            entries = numpy_entries()
        elif key == "jaxtyping":
            entries = simple_entries("jaxtyping", JAXTYPING_PAGES)
        elif key == "optax":
            entries = simple_entries("optax", OPTAX_PAGES)
        elif key == "python":
            entries = python_entries()
        else:
            pages = EQUINOX_PAGES if key == "equinox" else DIFFRAX_PAGES
            entries = mkdocs_entries(dict(sorted(pages.items())), missing)
        version = platform.python_version() if key == "python" else importlib.metadata.version(dist)
        path = HERE / filename
        _write_inventory(
            path,
            project,
            f"{version} (stand-in generated from the installed package)",
            entries,
        )
        print(
            f"{path.name}: {len(entries)} entries, {path.stat().st_size} bytes"
            + (f"; listed but not found: {', '.join(missing)}" if missing else "")
        )


def download() -> None:
    fetched = {}
    for filename, _project, _dist, url in PROJECTS.values():
        request = urllib.request.Request(url + "objects.inv", headers={"User-Agent": "sphinx"})
        with urllib.request.urlopen(request, timeout=60) as response:
            fetched[filename] = data = response.read()
        if not data.startswith(b"# Sphinx inventory version 2"):
            raise SystemExit(f"{url}objects.inv: not a Sphinx inventory (v2)")
    for filename, data in fetched.items():  # all or nothing
        (HERE / filename).write_bytes(data)
        print(f"{filename}: {len(data)} bytes, downloaded")


# Names each inventory must hold (checked by --check).
KEY_NAMES = {
    "jax.inv": "jax.jit jax.vmap jax.grad jax.Array jax.numpy.mean jax.random.normal "
    "jax.random.key jax.tree.map jax.lax.scan jax.nn.relu jax.typing.ArrayLike",
    "numpy.inv": "numpy.ndarray numpy.mean numpy.random.Generator numpy.random.default_rng "
    "numpy.float32 numpy.linalg.norm numpy.fft.fft numpy.typing.ArrayLike",
    "equinox.inv": "equinox.Module equinox.filter_jit equinox.filter_grad equinox.tree_at "
    "equinox.nn.Linear equinox.nn.MLP equinox.error_if",
    "diffrax.inv": "diffrax.diffeqsolve diffrax.ODETerm diffrax.Tsit5 diffrax.SaveAt "
    "diffrax.PIDController diffrax.Solution",
    "jaxtyping.inv": "jaxtyping.Float jaxtyping.Array jaxtyping.PRNGKeyArray jaxtyping.PyTree",
    "optax.inv": "optax.GradientTransformation optax.adam",
    "python.inv": "collections.abc.Callable pathlib.Path os.PathLike typing.Any",
}


def check() -> None:
    """Load each file with Sphinx's reader; fail where one lacks a key name."""
    from sphinx.util.inventory import InventoryFile

    failed = False
    for filename, *_ in PROJECTS.values():
        raw = (HERE / filename).read_bytes()
        data = InventoryFile.load(io.BytesIO(raw), "", posixpath.join)
        names = {name for items in data.values() for name in items}
        absent = [name for name in KEY_NAMES[filename].split() if name not in names]
        failed = failed or bool(absent)
        print(
            f"{filename}: {raw.splitlines()[2].decode()[2:]}; "
            f"{sum(len(items) for items in data.values())} entries in {', '.join(sorted(data))}"
            + (f"; MISSING {' '.join(absent)}" if absent else "")
        )
    if failed:
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--download",
        action="store_true",
        help="download the real objects.inv of each project instead",
    )
    group.add_argument(
        "--check", action="store_true", help="load each file with Sphinx, print what it holds"
    )
    args = parser.parse_args(argv)
    if args.download:
        download()
    elif args.check:
        check()
    else:
        generate()


if __name__ == "__main__":
    sys.exit(main())
