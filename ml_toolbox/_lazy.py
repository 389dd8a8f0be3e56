"""Lazy re-exports: a package's public names imported from their modules on first use."""

import importlib


def lazy_exports(package, exports, namespace):
    """``__getattr__`` and ``__dir__`` for ``package``, whose public names ``exports`` maps to the
    module each lives in; a name is imported on first use and kept in ``namespace`` (the package's
    ``globals()``), so the next lookup is a plain attribute."""

    def __getattr__(name):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
