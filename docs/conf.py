"""Sphinx configuration of arrayml's documentation site (`nox -s docs` builds it, offline).

The pages are Markdown read by MyST; the API reference (docs/api/, generated at every build) comes
from the library's own ``__all__`` lists and docstrings (docs/_ext/apipages.py); MathJax comes
from its npm package (docs/package.json) and is served from the site itself.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import arrayml  # noqa: E402  (after the path edit; autodoc imports it anyway)

project = "arrayml"
author = "the arrayml developers"
copyright = "the arrayml developers"  # noqa: A001
release = version = arrayml.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "apipages",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "node_modules", "tests", "_ext", "requirements.txt", "playground"]

# --- Markdown (MyST) ---------------------------------------------------------------------------
# $...$ and $$...$$ math (derivations.md), GitHub's heading anchors (the pages link to
# derivations.md#fused-softmax--cross-entropy as GitHub renders them), `:::` fences for notes.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 4

# --- API reference -----------------------------------------------------------------------------
# Google-style docstrings ("Args:", "Returns:", "Raises:") are the one style of the library.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autosummary_generate = False  # apipages writes the pages itself, from __all__
viewcode_line_numbers = True
default_role = "arrayml-soft"  # `name` in a docstring: see apipages

# A cross-reference that names nothing documented is an error ("nitpicky"), except the types of
# other libraries (no inventory of theirs is fetched: the build is offline) and the docstrings'
# plain `backticks` (the default role of apipages: a link where the name is documented, else code).
nitpicky = True
_OTHER_LIBRARIES = (r"(numpy|np|torch|jax|jaxlib|cupy|ndonnx|onnx|onnxruntime|spox|sklearn|pandas|scipy|"
                    r"array_api_compat|array_api_extra|array_api_strict|numba|tqdm|collections|typing|"
                    r"typing_extensions|types|pathlib|os|io|enum|dataclasses|threading|concurrent|"
                    r"contextlib|abc|datetime|numbers|functools|_thread|builtins)(\..*)?")
nitpick_ignore_regex = [
    ("py:.*", _OTHER_LIBRARIES),
    ("py:.*", r"(int|float|str|bytes|bool|object|None|type|dict|list|tuple|set|frozenset|slice|complex|"
              r"Exception|ValueError|TypeError|RuntimeError|OSError|KeyError|Ellipsis|NotImplemented|"
              r"Any|Callable|Iterable|Iterator|Mapping|MutableMapping|Sequence|Literal|Protocol|"
              r"TypeVar|Generic|Self|ClassVar|Final|Optional|Union|NamedTuple|Path|PathLike|"
              r"ModuleType|Generator|Hashable)"),
    # Type variables of the library's generic helpers (``N`` in arrayml.modules.tree): a
    # placeholder for "the caller's own module type", not a documented name.
    ("py:class", r"arrayml\..*\.[A-Z]"),
]

# --- HTML --------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"arrayml {release}"
html_static_path = ["_static"]
html_css_files = ["arrayml.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "header_links_before_dropdown": 5,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "icon_links": [],
    "logo": {"text": "arrayml"},
}
html_sidebars = {"index": []}
html_context = {"default_mode": "light"}  # the theme's colour scheme until a reader picks another

# MathJax from the npm package `mathjax` (`npm ci --prefix docs`), copied into the site's _static
# folder after the build: no page loads anything from another host. SVG output needs no web fonts.
MATHJAX = DOCS / "node_modules" / "mathjax" / "es5"
mathjax_path = "mathjax/tex-svg.js"


def _copy_mathjax(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        shutil.copytree(MATHJAX, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


def _require_mathjax(app) -> None:
    if app.builder.format == "html" and not (MATHJAX / "tex-svg.js").is_file():
        raise RuntimeError(f"MathJax is not installed in {MATHJAX.parent} (the site serves it itself): "
                           f"run `npm ci --prefix docs` first, or build with `nox -s docs`")


def setup(app) -> None:
    app.connect("builder-inited", _require_mathjax)
    app.connect("build-finished", _copy_mathjax)
