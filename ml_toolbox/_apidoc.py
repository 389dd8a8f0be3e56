"""Build docs/api.md, the API reference, from the numpydoc docstrings of the public names.

Run ``python -m ml_toolbox._apidoc`` (or ``make docs``) to rewrite docs/api.md;
``python -m ml_toolbox._apidoc --check`` exits 1 when the committed file is out of date (the test
suite runs the same comparison). The reference covers every name in ``ml_toolbox.__all__``, grouped
by module, then the public helpers of a few modules (``display``, ``progress``, ``exceptions``,
``fast``). A name whose module is not part of this build is listed at the end instead of failing.

Examples
--------
>>> print(rst_to_markdown("Wraps a :class:`~sklearn.preprocessing.FunctionTransformer` and ``X``."))
Wraps a `FunctionTransformer` and `X`.
>>> doc = parse_docstring('''Summary line.
...
... More text.
...
... Parameters
... ----------
... x : int, default=1
...     What x is.
... ''')
>>> doc["summary"], doc["extended"], doc["sections"]["Parameters"]
('Summary line.', 'More text.', [('x', 'int, default=1', 'What x is.')])
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pathlib
import re
import sys

__all__ = ["build", "main", "parse_docstring", "rst_to_markdown"]

HEADER = """# API reference

Generated from the numpydoc docstrings by `python -m ml_toolbox._apidoc` (`make docs`); do not edit
by hand. Every name below is importable as `from ml_toolbox import NAME` (and from
`ml_toolbox.pipelines`), except the helper modules at the end, imported by module.
"""

HELPER_MODULES = ("ml_toolbox.exceptions", "ml_toolbox.display", "ml_toolbox.progress",
                  "ml_toolbox.fast", "ml_toolbox.runs")

_LIST_SECTIONS = ("Parameters", "Other Parameters", "Attributes", "Returns", "Yields", "Raises",
                  "Warns", "Receives")
_ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`<]+?)(?:\s*<([^>]+)>)?`")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def rst_to_markdown(text):
    """Turn the reStructuredText inline markup of a docstring into Markdown.

    ``:class:`~a.b.C``` becomes ```C```, ``:func:`a.f``` becomes ```a.f```, double backticks
    become single ones.
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


def _is_underline(line):
    stripped = line.strip()
    return len(stripped) >= 3 and set(stripped) == {"-"}


def _split_sections(lines):
    """``(preamble lines, {section: lines})`` of a cleaned docstring."""
    preamble, sections, current = [], {}, None
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and line.strip() and _is_underline(lines[i + 1]) \
                and not line.startswith(" "):
            current = line.strip()
            sections[current] = []
            i += 2
            continue
        (sections[current] if current else preamble).append(line)
        i += 1
    return preamble, sections


def _paragraphs(lines):
    text = "\n".join(lines).strip("\n")
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]


def _entries(lines):
    """``[(name, type, description)]`` of a Parameters-like section."""
    entries = []
    for line in lines:
        if line and not line.startswith(" "):
            name, sep, kind = line.partition(" : ")
            if not sep and line.rstrip().endswith(" :"):
                name, kind = line.rstrip()[:-2], ""
            entries.append([name.strip(), kind.strip(), []])
        elif entries:
            entries[-1][2].append(line.strip())
    out = []
    for name, kind, desc in entries:
        text = " ".join(" ".join(desc).split())
        out.append((name, kind, text))
    return out


def parse_docstring(doc):
    """Split a numpydoc docstring into ``summary``, ``extended`` and ``sections``.

    Parameters-like sections become lists of ``(name, type, description)``; the others stay text.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    preamble, raw = _split_sections(lines)
    paragraphs = _paragraphs(preamble)
    summary = " ".join(paragraphs[0].split()) if paragraphs else ""
    extended = "\n\n".join(paragraphs[1:])
    sections = {}
    for name, body in raw.items():
        if name in _LIST_SECTIONS:
            sections[name] = _entries(body)
        else:
            sections[name] = "\n".join(body).strip("\n")
    return {"summary": summary, "extended": extended, "sections": sections}


def _signature(obj, name):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    params = list(sig.parameters.values())
    if params and params[0].name in ("self", "cls"):
        sig = sig.replace(parameters=params[1:])
    return _ADDRESS.sub("", f"{name}{sig}".replace(" -> None", ""))


def _render_doc(doc, level):
    parsed = parse_docstring(doc)
    out = []
    if parsed["summary"]:
        out.append(rst_to_markdown(parsed["summary"]))
    if parsed["extended"]:
        out.append(rst_to_markdown(parsed["extended"]))
    for section, body in parsed["sections"].items():
        if not body:
            continue
        out.append(f"{'#' * (level + 1)} {section}")
        if section in _LIST_SECTIONS:
            items = []
            for name, kind, text in body:
                head = f"**{rst_to_markdown(name)}**" if name else ""
                if kind:
                    head += f" ({rst_to_markdown(kind)})" if head else rst_to_markdown(kind)
                items.append(f"- {head}" + (f": {rst_to_markdown(text)}" if text else ""))
            out.append("\n".join(items))
        elif section == "Examples":
            out.append(_render_examples(body))
        else:
            out.append(rst_to_markdown(body))
    return "\n\n".join(out)


def _render_examples(body):
    blocks, prose, code = [], [], []

    def flush_code():
        if code:
            blocks.append("```pycon\n" + "\n".join(code).rstrip() + "\n```")
            code.clear()

    in_code = False
    for line in body.splitlines():
        if line.startswith(">>>"):
            if prose:
                blocks.append(rst_to_markdown(" ".join(" ".join(prose).split())))
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
        blocks.append(rst_to_markdown(" ".join(" ".join(prose).split())))
    return "\n\n".join(blocks)


def _public_members(cls):
    """``[(name, object)]`` of the public methods and properties ml_toolbox defines on ``cls``."""
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
            if not callable(target) or not getattr(target, "__doc__", None):
                continue
            members.append((name, member, target))
    return sorted(members, key=lambda m: m[0])


def _render_object(name, obj, qualified):
    out = [f"### `{name}`"]
    if inspect.isclass(obj):
        out.append(f"```python\nclass {_signature(obj, qualified)}\n```")
    elif callable(obj):
        out.append(f"```python\n{_signature(obj, qualified)}\n```")
    out.append(_render_doc(inspect.getdoc(obj) or "", level=3))
    if inspect.isclass(obj):
        for member_name, member, target in _public_members(obj):
            is_property = isinstance(member, property)
            title = f"{name}.{member_name}"
            out.append(f"#### `{title}`" + (" (property)" if is_property else ""))
            if not is_property:
                out.append(f"```python\n{_signature(target, member_name)}\n```")
            out.append(_render_doc(inspect.getdoc(target) or "", level=4))
    return "\n\n".join(part for part in out if part)


def build():
    """The text of docs/api.md for the package as it is installed now."""
    import ml_toolbox

    exports = getattr(ml_toolbox, "_EXPORTS", {})
    names = [n for n in exports if n in ml_toolbox.__all__] + \
        sorted(n for n in ml_toolbox.__all__ if n not in exports)
    by_module, missing = {}, []
    for name in names:
        module = exports.get(name, "ml_toolbox")
        try:
            obj = getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
            missing.append((name, module))
            continue
        by_module.setdefault(module, []).append((name, obj))
    out = [HEADER.strip(), "## Contents"]
    toc = []
    for module, items in by_module.items():
        toc.append(f"- `{module}`: " + ", ".join(f"[`{n}`](#{n.lower()})" for n, _ in items))
    helpers = []
    for module in HELPER_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
            continue
        items = [(n, getattr(mod, n)) for n in getattr(mod, "__all__", [])
                 if n not in names  # documented above already
                 and (inspect.isclass(getattr(mod, n)) or inspect.isfunction(getattr(mod, n)))
                 and getattr(getattr(mod, n), "__module__", module).startswith("ml_toolbox")]
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
        doc = parse_docstring(inspect.getdoc(mod) or "")
        if doc["summary"]:
            out.append(rst_to_markdown(doc["summary"]))
        for name, obj in items:
            out.append(_render_object(name, obj, f"{module}.{name}"))
    if missing:
        out.append("## Not in this build")
        out.append("\n".join(f"- `{name}` (module `{module}` is not part of this build)"
                             for name, module in missing))
    return "\n\n".join(out).rstrip() + "\n"


def default_path():
    """docs/api.md of the source tree this package is imported from."""
    return pathlib.Path(__file__).resolve().parent.parent / "docs" / "api.md"


def main(argv=None):
    """Write docs/api.md (or, with ``--check``, exit 1 when it is out of date)."""
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
