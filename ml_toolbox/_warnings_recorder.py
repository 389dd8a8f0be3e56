"""Recording the warnings a monitored run raises, safely from many threads at once.

Python's warnings filters and display hook are process-wide. Swapping them in and out per run (as
``warnings.catch_warnings`` does) is not safe when runs overlap in several threads: the saves and
restores interleave, the filters list grows and the display hook can be left pointing at a
finished run's list, so every later warning in the process vanishes.

Here the process-wide state is changed only by reference counting, under a lock: while at least
one run records, one ``"always"`` filter (a unique object, removed by identity) sits first in
``warnings.filters`` and ``warnings._showwarnmsg_impl`` is a dispatcher. The dispatcher hands a
warning to the recording run *of the current context* (a :class:`contextvars.ContextVar`: per
thread, per asyncio task, and carried into helper threads started with
``contextvars.copy_context().run``). A warning raised where nothing records goes to the user as
their own filters say (``"ignore"`` drops it, ``"error"`` raises it, any other action shows it).
When the last recording run ends, the filter and the display hook are put back. A recorded
warning is shown to the user again, under the user's filters, when its run ends.
"""

from __future__ import annotations

import contextvars
import functools
import os
import sys
import threading
import warnings

__all__ = ["WarningRecorder", "recording"]

_current = contextvars.ContextVar("ml_toolbox_warning_recorder", default=None)
_lock = threading.Lock()
# A unique object (not a constant tuple the compiler might share): found and removed by identity.
_ALWAYS = tuple(["always", None, Warning, None, 0])
_LEAN = all(hasattr(warnings, name) for name in (
    "filters", "_filters_mutated", "_showwarnmsg_impl", "_showwarning_orig", "showwarning"))


class _Installed:
    active = 0          # runs recording now, in every thread
    impl = None         # the user's warnings._showwarnmsg_impl, while installed
    showwarning = None  # the user's warnings.showwarning, while installed


@functools.lru_cache(maxsize=256)
def _module_of(filename):
    """The dotted module name of ``filename`` (for ``module=`` filters), else its stem."""
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name
    return os.path.splitext(os.path.basename(filename or ""))[0]


def _user_action(msg):
    """What the user's filters (ours left out) say about ``msg``: its action string."""
    text = str(msg.message)
    module = None
    for item in warnings.filters:
        if item is _ALWAYS:
            continue
        action, regex, category, mod, lineno = item
        if regex is not None and not regex.match(text):
            continue
        if not issubclass(msg.category, category):
            continue
        if lineno and msg.lineno != lineno:
            continue
        if mod is not None:
            if module is None:
                module = _module_of(msg.filename)
            if not mod.match(module):
                continue
        return action
    return warnings.defaultaction


def _show(msg, impl, showwarning):
    if showwarning is not None and showwarning is not warnings._showwarning_orig:
        showwarning(msg.message, msg.category, msg.filename, msg.lineno, msg.file, msg.line)
    else:
        (impl or warnings._showwarnmsg_impl)(msg)


def _dispatch(msg):
    """``warnings._showwarnmsg_impl`` while any run records: to this context's run, else to
    the user as their filters say."""
    caught = _current.get()
    if caught is not None:
        caught.append(msg)
        return
    action = _user_action(msg)
    if action == "ignore":
        return
    if action == "error":
        raise msg.message if isinstance(msg.message, Warning) else msg.category(msg.message)
    _show(msg, _Installed.impl, _Installed.showwarning)


def _install_locked():
    """Put the filter and the dispatcher in place (the first run to record; ``_lock`` held)."""
    module = warnings
    if module._showwarnmsg_impl is not _dispatch:
        _Installed.impl = module._showwarnmsg_impl
        _Installed.showwarning = module.showwarning
    filters = module.filters
    if not filters or filters[0] is not _ALWAYS:
        filters.insert(0, _ALWAYS)
    module._showwarnmsg_impl = _dispatch
    module.showwarning = module._showwarning_orig
    module._filters_mutated()


def _uninstall_locked():
    """Put the user's state back (the last run to record has ended; ``_lock`` held)."""
    module = warnings
    filters = module.filters
    if filters and filters[0] is _ALWAYS:
        del filters[0]  # where it was put (the usual case: no scan)
    else:  # moved by someone else's filter changes meanwhile: found by identity
        filters[:] = [f for f in filters if f is not _ALWAYS]
    if module._showwarnmsg_impl is _dispatch:
        module._showwarnmsg_impl = _Installed.impl
    if module.showwarning is module._showwarning_orig and _Installed.showwarning is not None:
        module.showwarning = _Installed.showwarning
    module._filters_mutated()


class WarningRecorder:
    """Record the warnings of one run in this context: ``caught`` holds those not taken yet (a
    stage takes its own with :meth:`take` when it ends); at :meth:`close`, all are shown again
    under the user's filters (unless ``show=False``). Safe with any number of runs recording at
    once in other threads.
    """

    __slots__ = ("caught", "_taken", "_token", "_manager", "_open", "_show")

    def __init__(self, show=True):
        self._show = show  # False: the caller shows them (e.g. from another process)
        self._taken = ()  # a list once a stage has taken warnings
        self.caught = caught = []
        self._open = True
        if _LEAN:  # (_install inlined: this runs for every monitored run, one-row ones included)
            self._manager = None
            _lock.acquire()
            _Installed.active += 1
            if _Installed.active == 1:
                _install_locked()
            _lock.release()
            self._token = _current.set(caught)
        else:  # an unusual warnings module: its own context manager (not thread-safe)
            self._token = None
            manager = warnings.catch_warnings(record=True)
            self._manager = manager
            self.caught = manager.__enter__()
            warnings.simplefilter("always")

    def take(self):
        """The warnings recorded since the last call, in order (a new list)."""
        caught = self.caught
        taken = caught[:]
        caught.clear()
        if taken:
            if self._taken:
                self._taken += taken
            else:
                self._taken = list(taken)  # not ``taken``: that one is the stage's own
        return taken

    def close(self):
        """Stop recording; show every recorded warning again, under the user's filters."""
        if not self._open:
            return
        self._open = False
        if self._manager is not None:
            self._manager.__exit__(None, None, None)
        else:
            try:
                _current.reset(self._token)
            except ValueError:  # closed in another context than it was opened in
                _current.set(None)
            _lock.acquire()
            _Installed.active -= 1
            if not _Installed.active:
                _uninstall_locked()
            _lock.release()
        if not self._show or not (self._taken or self.caught):
            return
        for w in [*self._taken, *self.caught]:  # still shown to the user, under the user's filters
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def recording():
    """A :class:`WarningRecorder` as a context manager: ``with recording() as r: ...``; then
    ``r.take()`` (or ``r.caught``) are the warnings raised inside, which are also shown to the
    user under their filters when the block ends."""
    return WarningRecorder()
