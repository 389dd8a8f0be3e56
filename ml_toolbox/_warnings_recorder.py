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

__all__ = ["WarningRecorder", "recording", "open_recording", "close_recording"]

_current = contextvars.ContextVar("ml_toolbox_warning_recorder", default=None)
_lock = threading.Lock()
# A unique object (not a constant tuple the compiler might share): found and removed by identity.
_ALWAYS = tuple(["always", None, Warning, None, 0])
# Whether this warnings module has what the lean recording needs (else: catch_warnings, per run)
LEAN = all(hasattr(warnings, name) for name in (
    "filters", "_filters_mutated", "_showwarnmsg_impl", "_showwarning_orig", "showwarning"))


class _State:
    """What is installed (one instance, ``_installed``: attribute stores on an instance, not on a
    class, whose every store would invalidate the type's attribute cache)."""

    __slots__ = ("active", "impl", "showwarning")

    def __init__(self):
        self.active = 0          # runs recording now, in every thread
        self.impl = None         # the user's warnings._showwarnmsg_impl, while installed
        self.showwarning = None  # the user's warnings.showwarning while installed, if replaced


_installed = _State()
_acquire = _lock.acquire
_release = _lock.release


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
    _show(msg, _installed.impl, _installed.showwarning)


def open_recording():
    """Start recording the warnings of this context: ``(caught, token)``, the list they are
    appended to and what :func:`close_recording` takes (the lean form of :class:`WarningRecorder`
    for a caller that needs no more: the execution loop's one-row path)."""
    caught = []
    _acquire()
    state = _installed
    state.active = active = state.active + 1
    if active == 1:  # the first run to record: the filter and the dispatcher put in place
        module = warnings
        if module._showwarnmsg_impl is not _dispatch:
            state.impl = module._showwarnmsg_impl
            module._showwarnmsg_impl = _dispatch
        if module.showwarning is not module._showwarning_orig:
            state.showwarning = module.showwarning
            module.showwarning = module._showwarning_orig
        filters = module.filters
        if not filters or filters[0] is not _ALWAYS:
            filters.insert(0, _ALWAYS)
        module._filters_mutated()
    _release()
    return caught, _current.set(caught)


def close_recording(caught, token, show=True):
    """Stop recording (``caught, token``: what :func:`open_recording` gave); show what was
    recorded to the user again, under their filters, unless ``show`` is False."""
    try:
        _current.reset(token)
    except ValueError:  # closed in another context than it was opened in
        _current.set(None)
    _acquire()
    state = _installed
    state.active = active = state.active - 1
    if not active:  # the last run to record has ended: the user's state put back
        module = warnings
        filters = module.filters
        if filters and filters[0] is _ALWAYS:
            del filters[0]
        else:
            filters[:] = [f for f in filters if f is not _ALWAYS]
        if module._showwarnmsg_impl is _dispatch:
            module._showwarnmsg_impl = state.impl
        if state.showwarning is not None:
            if module.showwarning is module._showwarning_orig:
                module.showwarning = state.showwarning
            state.showwarning = None
        module._filters_mutated()
    _release()
    if show and caught:
        for w in caught:  # still shown to the user, under the user's filters
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


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
        self._open = True
        if LEAN:
            self._manager = None
            self.caught, self._token = open_recording()
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
            close_recording(self.caught, self._token, show=False)
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
