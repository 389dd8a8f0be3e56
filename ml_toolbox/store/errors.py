"""The errors (and the warning) the versioned store raises; every one names the file, version or
name at fault."""

import pickle


class PersistenceError(Exception):
    """Base class of every error raised by the store."""


class StoreError(PersistenceError, OSError):
    """The store is unusable.

    Its path is a file or a directory that is not a store, it is read-only (every write operation),
    or one of its files is malformed or a symlink (the message names the file).
    """


class PluginSaveError(PersistenceError, pickle.PicklingError, TypeError):
    """A plug-in kept in a save (``plugins="keep"``) cannot be written; the message names it.

    Also a :class:`pickle.PicklingError` and a :class:`TypeError` (what the pickler or skops raised
    about it), so handlers written for those keep working.
    """


class InvalidNameError(PersistenceError, ValueError):
    """A model or alias name that cannot be stored (empty, path separators, '..', odd characters)."""


class VersionNotFoundError(PersistenceError, LookupError):
    """A name, version or alias that does not exist; the message lists what does."""

    def __str__(self):  # LookupError would not quote, but keep the plain message anyway
        return str(self.args[0]) if self.args else ""


class IntegrityError(PersistenceError, ValueError):
    """An artifact whose size or digest differs from its manifest (tampered or truncated).

    Parameters
    ----------
    message : str
        What failed, naming the file, the expected and the found value.
    path : str, optional
        The file that failed the check (also the attribute ``path``).
    expected : object, optional
        What the manifest records (also the attribute ``expected``).
    found : object, optional
        What was read (also the attribute ``found``).
    """

    def __init__(self, message, path=None, expected=None, found=None):
        super().__init__(message)
        self.path = path
        self.expected = expected
        self.found = found


class SignatureError(IntegrityError):
    """A version that is unsigned, or signed with another key, while the store requires a signature.

    Parameters
    ----------
    message : str
        What failed, naming the version or the alias file.
    path : str, optional
        The file that failed the check (also the attribute ``path``).
    expected : object, optional
        What the manifest records (also the attribute ``expected``).
    found : object, optional
        What was read (also the attribute ``found``).
    """


class MalformedFileError(StoreError, IntegrityError):
    """A store file (manifest, alias file, marker) that is not what the store writes.

    Not JSON, or not the structure expected. Both a StoreError and an IntegrityError.

    Parameters
    ----------
    message : str
        What is wrong, naming the file.
    path : str, optional
        The file (also the attribute ``path``).
    """

    def __init__(self, message, path=None):
        StoreError.__init__(self, message)
        self.path, self.expected, self.found = path, None, None


class FormatRefusedError(IntegrityError):
    """A version whose manifest asks for a format the store's or the load's policy refuses.

    A pickle under ``allow_pickle=False``, or a format outside ``formats=``: nothing was
    deserialised.

    Parameters
    ----------
    message : str
        What was refused, naming the version and the formats allowed.
    path : str, optional
        The file that failed the check (also the attribute ``path``).
    expected : object, optional
        The formats allowed (also the attribute ``expected``).
    found : object, optional
        The format the manifest asks for (also the attribute ``found``).
    """


class GateError(PersistenceError, ValueError):
    """``promote`` refused: at least one quality gate failed.

    Parameters
    ----------
    message : str
        The refusal, naming every failed gate.
    failed : sequence of str, default=()
        The failed gates' messages (also the attribute ``failed``, a list).
    """

    def __init__(self, message, failed=()):
        super().__init__(message)
        self.failed = list(failed)


class AliasedVersionError(PersistenceError, ValueError):
    """``delete_version`` refused: an alias points at the version."""


class VersionMismatchWarning(UserWarning):
    """A version saved under other library versions than the ones running now."""
