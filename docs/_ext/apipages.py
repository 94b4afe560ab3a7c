"""The API reference, written at every build from the library itself.

Which names are public is what the library says: the ``__all__`` of `arrayml`, of each module and
subpackage directly under it, and of every module one of those lists (`arrayml.datasets.cifar10`);
a module without ``__all__`` publishes the classes and functions it defines whose names do not
start with an underscore. Each of those modules gets a page (docs/api/<module>.rst): its
docstring, a table of every public name with its summary line, and the full entry (signature,
docstring, members, a link to the source) of each object it is the home of. An object listed by
several modules (``arrayml.MLP`` is ``arrayml.modules.MLP``) is described once, on the page of the
module it belongs to (the longest listing module that its ``__module__`` starts with), and every
other public name of it is registered as an alias of that entry, so that ``arrayml.MLP`` links
there too.

The build fails (a warning, and the build treats warnings as errors) when a public name has no
entry in the reference, when a class or function or module of the public API has no docstring, or
when an ``__all__`` lists a name its module does not have.

The docstrings' plain `backticks` (the default role) link to the entry of the name they hold when
there is one (by full name, or by a short name that only one public object has) and read as code
otherwise; an explicit role (``:class:`X```) that names nothing documented is an error.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any

from apinames import PACKAGE, Plan, plan
from apinames import kind as _kind
from sphinx.application import Sphinx
from sphinx.domains.python import ObjectEntry, PyXRefRole
from sphinx.util import logging
from sphinx.util.nodes import make_refnode

FOLDER = "api"
logger = logging.getLogger(__name__)
_PLAN: Plan | None = None  # this build's plan (modules and objects: not part of the pickled environment)


def _title(text: str, underline: str = "=") -> str:
    return f"{text}\n{underline * len(text)}\n"


def summary(obj: Any, comment: list[str] | None = None) -> str:
    """The first sentence of an object's docstring (of a constant's ``#:`` comment), for the table
    of its module's page: it ends at a full stop outside ``code`` and parentheses, not at "e.g."."""
    doc = " ".join(comment or []) if _kind(obj) == "data" else (getattr(obj, "__doc__", None) or "")
    paragraph = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    code, depth, i = False, 0, 0
    while i < len(paragraph):
        if paragraph.startswith("``", i):
            code = not code
            i += 2
            continue
        char = paragraph[i]
        if char == "`":
            code = not code
        elif not code and char in "([":
            depth += 1
        elif not code and char in ")]":
            depth = max(depth - 1, 0)
        elif (char == "." and not code and not depth and (i + 1 == len(paragraph) or paragraph[i + 1] == " ")
              and not paragraph[: i + 1].endswith(("e.g.", "i.e.", "etc.", "vs."))):
            return inline_fixes(paragraph[: i + 1])
        i += 1
    return inline_fixes(paragraph)


_CODE_SPAN = re.compile(r"(``.+?``)(\w?)")  # each ``code`` span, left to right, and a letter right after it


def inline_fixes(line: str) -> str:
    """What plain text means and reST reads otherwise: ``torch.compile``d (code then a letter)
    and |x| (an absolute value, not a substitution)."""
    line = _CODE_SPAN.sub(lambda m: m.group(1) + ("\\ " + m.group(2) if m.group(2) else ""), line)
    parts = _CODE.split(line)   # code spans at odd indices, kept as they are
    return "".join(part if i % 2 else part.replace("|", "\\|") for i, part in enumerate(parts))


_CODE = re.compile(r"(``.+?``(?:\\ )?|`[^`]+`)")


def data_comment(module_name: str, name: str) -> list[str]:
    """The ``#:`` comment above ``NAME = ...`` in the module (or the module its package took it from)."""
    from sphinx.pycode import ModuleAnalyzer

    module = importlib.import_module(module_name)
    inside = pkgutil.walk_packages(module.__path__, module_name + ".") if hasattr(module, "__path__") else []
    candidates = [module_name] + sorted(info.name for info in inside)
    for candidate in candidates:
        try:
            docs = ModuleAnalyzer.for_module(candidate).find_attr_docs()
        except Exception:  # noqa: BLE001 (a module without source: no comment to find)
            continue
        if ("", name) in docs:
            return [line.rstrip() for line in docs[("", name)]]
    return []


def _value(obj: Any) -> str:
    text = obj.__name__ if inspect.isclass(obj) else repr(obj)
    text = " ".join(text.split())
    return text if len(text) <= 100 else text[:97] + "..."


def page(module_name: str, the_plan: Plan) -> str:
    """The reST of one module's page: its docstring, a table of its public names (each linking
    to its entry, here or on its home page), then the entries whose home is this module."""
    names = the_plan.pages[module_name]
    lines = [f".. Generated by docs/_ext/apipages.py from {module_name}'s __all__ at every build.", "",
             _title(module_name),
             f".. automodule:: {module_name}", "",
             f".. currentmodule:: {module_name}", ""]
    if names:
        lines += [".. list-table::", "   :class: autosummary apipages-table", "   :widths: 30 70", ""]
        for name in names:
            home = the_plan.alias_of[f"{module_name}.{name}"]
            home_module, _, home_name = home.rpartition(".")
            obj = the_plan.entries[home].obj
            text = summary(obj, data_comment(home_module, home_name) if _kind(obj) == "data" else None) or "\\"
            lines += [f"   * - :py:obj:`{name} <{home}>`", f"     - {text}"]
        lines.append("")
    for name in names:
        full = f"{module_name}.{name}"
        if the_plan.alias_of[full] != full:
            continue
        obj = the_plan.entries[full].obj
        kind = _kind(obj)
        if kind == "module":
            continue
        if kind == "data":
            lines += [f".. py:data:: {name}", f"   :value: {_value(obj)}", ""]
            lines += [f"   {inline_fixes(line)}" for line in data_comment(module_name, name)]
            lines.append("")
            continue
        lines.append(f".. auto{kind}:: {name}")
        if kind in ("class", "exception"):
            lines += ["   :members:", "   :show-inheritance:", "   :special-members: __call__"]
        lines.append("")
    return "\n".join(lines) + "\n"


def index(the_plan: Plan) -> str:
    lines = [".. Generated by docs/_ext/apipages.py at every build.\n",
             _title("API reference"),
             "Every public name of the library, generated from its docstrings: the names each module "
             "lists in its ``__all__``, with their signatures, their documentation and a link to their "
             "source. ``import arrayml as am`` gives the names of the first page; the others are "
             "modules of their own (``from arrayml import checkpoint``).\n",
             ".. toctree::", "   :maxdepth: 1", ""]
    lines += [f"   {module_name}" for module_name in the_plan.pages]
    return "\n".join(lines) + "\n"


def _current() -> Plan:
    assert _PLAN is not None, "the API plan is made when the builder starts"
    return _PLAN


def write_pages(app: Sphinx) -> None:
    """Write docs/api/ afresh (it is git-ignored), keeping files whose text did not change, so an
    incremental build rereads only what changed."""
    global _PLAN
    the_plan = _PLAN = plan()
    folder = Path(app.srcdir) / FOLDER
    folder.mkdir(exist_ok=True)
    texts = {"index.rst": index(the_plan)} | {f"{m}.rst": page(m, the_plan) for m in the_plan.pages}
    for old in folder.glob("*.rst"):
        if old.name not in texts:
            old.unlink()
    for name, text in texts.items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def check_and_alias(app: Sphinx, env) -> None:
    """After every page is read: each public name has an entry, and its other names point there."""
    the_plan = _current()
    # viewcode lists every module it looked at in its index, those without source (builtins) too,
    # as links to pages it does not write: keep only the library's
    viewcode = getattr(env, "_viewcode_modules", {})
    for name in [m for m, found in viewcode.items() if not found or not m.startswith(PACKAGE)]:
        del viewcode[name]
    for problem in the_plan.problems:
        logger.warning(f"API reference: {problem}", type="arrayml", subtype="api")
    py = env.get_domain("py")
    for home, entry in the_plan.entries.items():
        target = py.objects.get(home) or (py.modules.get(home) and py.objects.get(home))
        if target is None and home not in py.modules:
            logger.warning(f"API reference: {home} has no entry", type="arrayml", subtype="api")
            continue
        if target is None:
            continue  # a module: its page is its entry, and py:obj finds modules by their name
        for alias in entry.aliases:
            if alias not in py.objects:
                py.objects[alias] = ObjectEntry(target.docname, target.node_id, target.objtype, aliased=True)


# --- docstrings as the library writes them --------------------------------------------------

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns?|Yields?|Raises|Attributes|Examples?|Notes?|"
                      r"Warnings?|See Also|References|Todo|Methods|Keyword Args|Other Parameters):\s*$")


def literal_indented_blocks(app: Sphinx, what, name, obj, options, lines: list[str]) -> None:
    """The library's docstrings show code and file layouts as indented blocks after a blank line
    (as Markdown does); reStructuredText would read them as quotations, so each becomes a
    literal block. Blocks after ``::`` and the bodies of Google-style sections are left alone."""
    out: list[str] = []
    previous = ""        # the last non-blank line before the current run of blank lines
    blank = False
    inside = None        # the indentation of the literal block being copied
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if not line.strip():
            blank = True
            out.append(line)
            continue
        if inside is not None and indent >= inside:
            out.append(line)
            previous = line
            blank = False
            continue
        inside = None
        if blank and previous.rstrip().endswith("::") and indent > len(previous) - len(previous.lstrip()):
            inside = indent  # a literal block the docstring marked itself
            out.append(line)
            previous, blank = line, False
            continue
        line = inline_fixes(line)
        base = len(previous) - len(previous.lstrip())
        if (blank and previous and indent > base and not previous.rstrip().endswith("::")
                and not _SECTION.match(previous) and not previous.lstrip().startswith((".. ", "- ", "* "))):
            out[len(out) - 1:len(out) - 1] = [" " * base + "::", ""] if out and not out[-1].strip() else []
            inside = indent
        out.append(line)
        previous = line
        blank = False
    lines[:] = out


_ORIGINAL: dict[str, list[str]] = {}  # each docstring as it came, before napoleon


def keep_original(app: Sphinx, what, name, obj, options, lines: list[str]) -> None:
    _ORIGINAL[name] = list(lines)


def undo_napoleon_on_sentences(app: Sphinx, what, name, obj, options, lines: list[str]) -> None:
    """A property whose docstring opens with a sentence ("The momentum buffers by parameter name:
    ...") is not a Google-style "type: description" line: give it back as written."""
    original = _ORIGINAL.get(name)
    if what in ("property", "attribute") and original:
        head = original[0].partition(":")
        if head[1] and " " in head[0].strip():
            lines[:] = original


def skip_other_libraries(app: Sphinx, what, name, obj, skip, options):
    """Members a class gets from another library (scikit-learn's ``set_fit_request``) are that
    library's to document."""
    target = getattr(obj, "fget", obj)
    module = getattr(target, "__module__", None)
    if module and not module.startswith(PACKAGE) and not name.startswith("__"):
        return True
    return None


def public_bases(app: Sphinx, name, obj, options, bases: list) -> None:
    """"Bases:" names public classes only: a private base gives way to its own bases."""
    documented = {id(entry.obj) for entry in _current().entries.values()}
    out: list = []

    def add(base):
        if base is object or id(base) in documented or not (getattr(base, "__module__", "") or "").startswith(PACKAGE):
            if base not in out:
                out.append(base)
            return
        for parent in base.__bases__:
            add(parent)

    for base in bases:
        add(base)
    bases[:] = [b for b in out if b is not object] or out


# --- the docstrings' default role ------------------------------------------------------------


class _SoftReference(PyXRefRole):
    def result_nodes(self, document, env, node, is_ref):
        node["arrayml_soft"] = True
        return [node], []


_soft = _SoftReference()


def soft_reference(name, rawtext, text, lineno, inliner, options=None, content=()):
    """`name`: a link to the entry of `name` where there is one, else code."""
    return _soft("py:obj", rawtext, text, lineno, inliner, options or {}, list(content))


def resolve_short_names(app: Sphinx, env, node, contnode):
    """A Python reference the domain did not find: a short name (``Linear``, ``fit``) that exactly
    one public object has resolves to that object's entry."""
    if node.get("refdomain") != "py":
        return None
    the_plan = _current()
    target = node["reftarget"].removeprefix("~").removeprefix(".")
    homes = {home for full, home in the_plan.alias_of.items() if full == target or full.endswith("." + target)}
    py = env.get_domain("py")
    if len(homes) != 1:
        return None
    home = homes.pop()
    if home in py.objects:
        entry = py.objects[home]
        return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, home)
    if home in py.modules:
        module = py.modules[home]
        return make_refnode(app.builder, node["refdoc"], module.docname, module.node_id, contnode, home)
    return None


def quiet_soft_references(app: Sphinx, domain, node) -> bool | None:
    """Not broken links: a plain `backtick` that names nothing documented (it reads as code), and
    in the annotations of a signature or a field, a private type (``_Bucket``, a type alias of a
    private module such as ``AdamLists``) or a piece of a subscripted one (``dict[str``)."""
    target = node["reftarget"]
    private = any(part.startswith("_") for part in target.split("."))
    annotation = node.get("refdomain") == "py" and node.get("reftype") == "class" and "." not in target
    return True if node.get("arrayml_soft") or "[" in target or private or annotation else None


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_role("arrayml-soft", soft_reference)
    app.connect("builder-inited", write_pages)
    app.connect("autodoc-process-docstring", keep_original, priority=300)
    app.connect("autodoc-process-docstring", literal_indented_blocks, priority=400)
    app.connect("autodoc-process-docstring", undo_napoleon_on_sentences, priority=600)
    app.connect("autodoc-skip-member", skip_other_libraries)
    app.connect("autodoc-process-bases", public_bases)
    app.connect("env-check-consistency", check_and_alias)
    app.connect("missing-reference", resolve_short_names)
    app.connect("warn-missing-reference", quiet_soft_references)
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}

