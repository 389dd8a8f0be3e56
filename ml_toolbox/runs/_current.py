"""The run in progress in this thread or task (a context variable): the one small piece of
:mod:`ml_toolbox.runs` the training loop reads on every epoch, without importing the rest."""

import contextvars

#: The :class:`~ml_toolbox.runs.ActiveRun` of the execution in progress here, or None.
CURRENT = contextvars.ContextVar("ml_toolbox_current_run", default=None)
