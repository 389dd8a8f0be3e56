"""Docstring helpers shared by the modules (no public API)."""

import inspect


def inherit_docstrings(cls, names=None):
    """Give the methods ``cls`` overrides without a docstring the docstring of the base's method.

    ``help()`` already shows the inherited text; this makes it the method's own ``__doc__``, which
    is what numpydoc's validator and the API page read.

    Parameters
    ----------
    cls : type
        The class, changed in place.
    names : iterable of str, default=None
        Only these methods (e.g. a base class's hooks); None means every method ``cls`` defines.

    Returns
    -------
    type
        ``cls`` (a class decorator).
    """
    for name, member in vars(cls).items():
        if names is not None and name not in names:
            continue
        if not inspect.isfunction(member) or member.__doc__:
            continue
        for base in cls.__mro__[1:]:
            doc = getattr(getattr(base, name, None), "__doc__", None)
            if doc:
                member.__doc__ = doc
                break
    return cls
