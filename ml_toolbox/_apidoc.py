"""Build docs/api.md, the API reference, from the numpydoc docstrings of the public names.

Run ``python -m ml_toolbox._apidoc`` (or ``make docs``) to rewrite docs/api.md;
``python -m ml_toolbox._apidoc --check`` exits 1 when the committed file is out of date (the test
suite runs the same comparison). The reference covers every name in ``ml_toolbox.__all__``, grouped
by module, then the public helpers of a few modules (``display``, ``progress``, ``exceptions``,
``fast``, ``runs``). A name whose module is not part of this build is listed at the end instead of
failing. Docstrings are parsed by numpydoc's own parser (:mod:`numpydoc.docscrape`); this module only
renders the parsed sections as Markdown. :func:`public_objects` lists what the reference covers
plus the public subpackages, and tests/test_docstrings.py runs numpydoc's validator on each.

Examples
--------
>>> print(rst_to_markdown("Wraps a :class:`~sklearn.preprocessing.FunctionTransformer` and ``X``."))
Wraps a `FunctionTransformer` and `X`.
>>> print(render_docstring('''Summary line.
...
... Parameters
... ----------
... x : int, default=1
...     What x is.
... ''', level=3))
Summary line.
<BLANKLINE>
#### Parameters
<BLANKLINE>
- **x** (int, default=1): What x is.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pathlib
import re
import sys
import warnings

from numpydoc.docscrape import ClassDoc, FunctionDoc, NumpyDocString

__all__ = ["build", "main", "public_members", "public_modules", "public_objects",
           "render_docstring", "rst_to_markdown"]

HEADER = """# API reference

Generated from the numpydoc docstrings by `python -m ml_toolbox._apidoc` (`make docs`); do not edit
by hand. Every name below is importable as `from ml_toolbox import NAME` (and from
`ml_toolbox.pipelines`), except the helper modules at the end, imported by module.

## Docstring conventions

Public docstrings follow [numpydoc](https://numpydoc.readthedocs.io/en/latest/format.html), and
tests/test_docstrings.py runs numpydoc's validator (`numpydoc.validate`) on every public class,
function, method and property: the names of `ml_toolbox`, of its subpackages `store`, `runs` and
`serving`, of the helper modules below and of every other public module's `__all__`. Methods a class inherits unchanged from scikit-learn
carry scikit-learn's docstrings and are not checked. Parameters, Returns, Yields and Raises must
match the signature. Four checks are switched off, each for a reason:

- GL01 (the summary starts on the line after the opening quotes): the project writes the summary
  on the opening line, as PEP 257 does.
- ES01 (an extended summary): a one-line summary is enough for many methods.
- SA01 (a See Also section): cross-references are in the guide pages.
- EX01 (an Examples section) for methods and properties: public classes and functions must have
  examples, and they run as doctests; a method's use is shown in its class's examples.

Where the validator misreads a signature, the definition line says so with numpydoc's own
`# numpydoc ignore=CODE` comment, its reason in a comment above: today PR02 on
`fast.register_kernel` and `fast.unregister_kernel`, whose first parameter is named `cls` (the
validator drops it, taking it for a classmethod's).
"""

HELPER_MODULES = ("ml_toolbox.exceptions", "ml_toolbox.display", "ml_toolbox.progress",
                  "ml_toolbox.fast", "ml_toolbox.runs")

# Public subpackages whose ``__all__`` is checked by the docstring test first (then every other
# public module's: see public_modules).
SUBPACKAGES = ("ml_toolbox.store", "ml_toolbox.runs", "ml_toolbox.serving")

# numpydoc's section order (the validator's GL07); list sections are rendered as bullet lists.
_SECTIONS = ("Parameters", "Attributes", "Returns", "Yields", "Receives", "Other Parameters",
             "Raises", "Warns", "Warnings", "See Also", "Notes", "References", "Examples")
_LIST_SECTIONS = ("Parameters", "Other Parameters", "Attributes", "Returns", "Yields", "Raises",
                  "Warns", "Receives")
_ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`<]+?)(?:\s*<([^>]+)>)?`")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def rst_to_markdown(text):
    """Turn the reStructuredText inline markup of a docstring into Markdown.

    ``:class:`~a.b.C``` becomes ```C```, ``:func:`a.f``` becomes ```a.f```, double backticks
    become single ones.

    Parameters
    ----------
    text : str
        Docstring text.

    Returns
    -------
    str
        The same text with Markdown inline code instead of roles and double backticks.
    """
    def role(match):
        tilde, target, explicit = match.groups()
        if explicit:
            target = explicit
        target = target.strip()
        if tilde:
            target = target.rsplit(".", 1)[-1]
        return f"`{target}`"

    text = _ROLE.sub(role, text)
    return text.replace("``", "`")


def _one_line(lines):
    return " ".join(" ".join(lines).split())


def _paragraphs(lines):
    text = "\n".join(lines).strip("\n")
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]


def _parse(obj_or_doc):
    """numpydoc's parse of a docstring, a class or a function (warnings about odd sections muted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(obj_or_doc, str):
            return NumpyDocString(obj_or_doc)
        if inspect.isclass(obj_or_doc):
            return ClassDoc(obj_or_doc, config={"show_class_members": False})
        return FunctionDoc(obj_or_doc)


def _render_entries(entries):
    items = []
    for entry in entries:
        name, kind, text = entry.name, entry.type, _one_line(entry.desc)
        head = f"**{rst_to_markdown(name)}**" if name else ""
        if kind:
            head += f" ({rst_to_markdown(kind)})" if head else rst_to_markdown(kind)
        items.append(f"- {head}" + (f": {rst_to_markdown(text)}" if text else ""))
    return "\n".join(items)


def _render_see_also(entries):
    items = []
    for functions, desc in entries:
        names = ", ".join(f"`{name}`" for name, _role in functions)
        items.append(f"- {names}" + (f": {rst_to_markdown(_one_line(desc))}" if desc else ""))
    return "\n".join(items)


def _render_examples(lines):
    blocks, prose, code = [], [], []

    def flush_code():
        if code:
            blocks.append("```pycon\n" + "\n".join(code).rstrip() + "\n```")
            code.clear()

    in_code = False
    for line in lines:
        if line.startswith(">>>"):
            if prose:
                blocks.append(rst_to_markdown(_one_line(prose)))
                prose.clear()
            in_code = True
            code.append(line)
        elif in_code and line.strip():
            code.append(line)
        elif in_code:
            flush_code()
            in_code = False
        elif line.strip():
            prose.append(line)
    flush_code()
    if prose:
        blocks.append(rst_to_markdown(_one_line(prose)))
    return "\n\n".join(blocks)


def render_docstring(doc, level):
    """Render a docstring, or the docstring of a class or function, as Markdown.

    Parameters
    ----------
    doc : str, class or function
        What to render; numpydoc's ``docscrape`` parses it.
    level : int
        Heading level of the object the docstring belongs to; its sections get ``level + 1``.

    Returns
    -------
    str
        The summary, the extended summary, then one heading per section that is not empty.
    """
    parsed = doc if isinstance(doc, NumpyDocString) else _parse(doc)
    out = []
    if parsed["Summary"]:
        out.append(rst_to_markdown(_one_line(parsed["Summary"])))
    out.extend(rst_to_markdown(p) for p in _paragraphs(parsed["Extended Summary"]))
    for section in _SECTIONS:
        body = parsed[section]
        if not body:
            continue
        out.append(f"{'#' * (level + 1)} {section}")
        if section in _LIST_SECTIONS:
            out.append(_render_entries(body))
        elif section == "See Also":
            out.append(_render_see_also(body))
        elif section == "Examples":
            out.append(_render_examples(body))
        else:
            out.append("\n\n".join(rst_to_markdown(p) for p in _paragraphs(body)))
    return "\n\n".join(out)


def _signature(obj, name, method=False):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    params = list(sig.parameters.values())
    if method and params and params[0].name in ("self", "cls"):
        sig = sig.replace(parameters=params[1:])
    return _ADDRESS.sub("", f"{name}{sig}".replace(" -> None", ""))


def public_members(cls):
    """The public methods and properties ml_toolbox defines on a class.

    Members a class inherits unchanged from scikit-learn (or any library outside ml_toolbox) are
    left out: their docstrings are that library's.

    Parameters
    ----------
    cls : type
        A public class of the package.

    Returns
    -------
    list of (str, object, callable)
        ``(name, member as found in the class, function holding the docstring)``, sorted by name;
        for a property the function is its getter.
    """
    members, seen = [], set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("ml_toolbox"):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            target = getattr(member, "fn", member)  # available_if wraps the method in .fn
            if isinstance(target, (staticmethod, classmethod)):
                target = target.__func__
            if isinstance(target, property):
                target = target.fget
            if not callable(target) or inspect.isclass(target):
                continue
            members.append((name, member, target))
    return sorted(members, key=lambda m: m[0])


def _import(module):
    """The module, or None when it needs an extra this build does not have."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name == module:
            return None
        raise


def _module_names(module_name, mod):
    return [(n, getattr(mod, n)) for n in getattr(mod, "__all__", [])
            if (inspect.isclass(getattr(mod, n)) or inspect.isfunction(getattr(mod, n)))
            and getattr(getattr(mod, n), "__module__", module_name).startswith("ml_toolbox")]


def public_modules():
    """List the public modules of the package: no part of their dotted name starts with ``_``.

    Returns
    -------
    list of str
        Their names, sorted; a module that needs an extra this build does not have is left out.
    """
    import pkgutil

    import ml_toolbox

    names = []
    for info in pkgutil.walk_packages(ml_toolbox.__path__, "ml_toolbox.",
                                      onerror=lambda name: None):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        try:
            if _import(info.name) is not None:
                names.append(info.name)
        except ModuleNotFoundError as error:  # a dependency of an optional extra
            if (error.name or "").startswith("ml_toolbox"):
                raise
    return sorted(names)


def public_objects():
    """Every public class, function, method and property, by the path numpydoc imports it from.

    The names of ``ml_toolbox.__all__`` (the same objects as ``ml_toolbox.pipelines``), of the
    public subpackages' ``__all__``, of the helper modules and of every other public module's
    ``__all__`` (:func:`public_modules`), then for each class the members :func:`public_members`
    lists. An object reachable under several names is listed once, under the first: a method a
    subclass inherits from a toolbox base class is listed on the base class.

    Returns
    -------
    list of (str, str, object)
        ``(import path, kind, object)`` where kind is ``"class"``, ``"function"``, ``"method"``
        or ``"property"``.
    """
    import ml_toolbox

    roots = [("ml_toolbox", ml_toolbox, [(n, getattr(ml_toolbox, n)) for n in ml_toolbox.__all__])]
    others = [m for m in public_modules() if m not in SUBPACKAGES + HELPER_MODULES]
    for module_name in (*SUBPACKAGES, *HELPER_MODULES, *others):
        mod = _import(module_name)
        if mod is not None:
            roots.append((module_name, mod, _module_names(module_name, mod)))
    out, seen = [], set()
    for module_name, _mod, names in roots:
        for name, obj in names:
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            path = f"{module_name}.{name}"
            out.append((path, "class" if inspect.isclass(obj) else "function", obj))
            if not inspect.isclass(obj):
                continue
            for member_name, member, target in public_members(obj):
                if id(target) in seen:
                    continue
                seen.add(id(target))
                kind = "property" if isinstance(member, property) else "method"
                out.append((f"{path}.{member_name}", kind, target))
    return out


def _render_object(name, obj, qualified):
    out = [f"### `{name}`"]
    if inspect.isclass(obj):
        out.append(f"```python\nclass {_signature(obj, qualified)}\n```")
    elif callable(obj):
        out.append(f"```python\n{_signature(obj, qualified)}\n```")
    out.append(render_docstring(obj, level=3))
    if inspect.isclass(obj):
        for member_name, member, target in public_members(obj):
            if not getattr(target, "__doc__", None):
                continue
            is_property = isinstance(member, property)
            title = f"{name}.{member_name}"
            out.append(f"#### `{title}`" + (" (property)" if is_property else ""))
            if not is_property:
                out.append(f"```python\n{_signature(target, member_name, method=True)}\n```")
            out.append(render_docstring(target, level=4))
    return "\n\n".join(part for part in out if part)


def build():
    """The text of docs/api.md for the package as it is installed now.

    Returns
    -------
    str
        The Markdown page.
    """
    import ml_toolbox

    exports = getattr(ml_toolbox, "_EXPORTS", {})
    names = [n for n in exports if n in ml_toolbox.__all__] + \
        sorted(n for n in ml_toolbox.__all__ if n not in exports)
    by_module, missing = {}, []
    for name in names:
        module = exports.get(name, "ml_toolbox")
        mod = _import(module)
        if mod is None:
            missing.append((name, module))
            continue
        by_module.setdefault(module, []).append((name, getattr(mod, name)))
    out = [HEADER.strip(), "## Contents"]
    toc = []
    for module, items in by_module.items():
        toc.append(f"- `{module}`: " + ", ".join(f"[`{n}`](#{n.lower()})" for n, _ in items))
    helpers = []
    for module in HELPER_MODULES:
        mod = _import(module)
        if mod is None:
            continue
        items = [(n, obj) for n, obj in _module_names(module, mod)
                 if n not in names]  # documented above already
        if items:
            helpers.append((module, mod, items))
            toc.append(f"- helpers, `{module}`: " + ", ".join(f"`{n}`" for n, _ in items))
    out.append("\n".join(toc))
    for module, items in by_module.items():
        out.append(f"## `{module}`")
        for name, obj in items:
            out.append(_render_object(name, obj, name))
    for module, mod, items in helpers:
        out.append(f"## `{module}` (helpers)")
        summary = _paragraphs((inspect.getdoc(mod) or "").splitlines())
        if summary:
            out.append(rst_to_markdown(" ".join(summary[0].split())))
        for name, obj in items:
            out.append(_render_object(name, obj, f"{module}.{name}"))
    if missing:
        out.append("## Not in this build")
        out.append("\n".join(f"- `{name}` (module `{module}` is not part of this build)"
                             for name, module in missing))
    return "\n\n".join(out).rstrip() + "\n"


def default_path():
    """docs/api.md of the source tree this package is imported from.

    Returns
    -------
    pathlib.Path
        The path, whether or not the file exists.
    """
    return pathlib.Path(__file__).resolve().parent.parent / "docs" / "api.md"


def main(argv=None):
    """Write docs/api.md (or, with ``--check``, exit 1 when it is out of date).

    Parameters
    ----------
    argv : list of str, default=None
        The command-line arguments; None reads ``sys.argv``.

    Returns
    -------
    int
        The exit status: 0, or 1 when ``--check`` finds the file out of date.
    """
    parser = argparse.ArgumentParser(prog="python -m ml_toolbox._apidoc",
                                     description="Build docs/api.md from the docstrings.")
    parser.add_argument("--check", action="store_true",
                        help="compare with the file instead of writing it")
    parser.add_argument("--output", type=pathlib.Path, default=None,
                        help="where to write (default: docs/api.md of the source tree)")
    args = parser.parse_args(argv)
    path = args.output or default_path()
    text = build()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            sys.stderr.write(f"{path} is out of date: run `python -m ml_toolbox._apidoc` "
                             "(or `make docs`) and commit it.\n")
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
