"""Docstring helpers shared by the modules (no public API)."""

import inspect


def inherit_docstrings(cls):
    """Give the methods ``cls`` overrides without a docstring the docstring of the base's method.

    ``help()`` already shows the inherited text; this makes it the method's own ``__doc__``, which
    is what numpydoc's validator and the API page read.

    Parameters
    ----------
    cls : type
        The class, changed in place.

    Returns
    -------
    type
        ``cls`` (a class decorator).
    """
    for name, member in vars(cls).items():
        if not inspect.isfunction(member) or member.__doc__:
            continue
        for base in cls.__mro__[1:]:
            doc = getattr(getattr(base, name, None), "__doc__", None)
            if doc:
                member.__doc__ = doc
                break
    return cls
