"""Progress bars for long work, shown only when a person is watching.

A person is watching when ``verbose`` is not 0, the ``CI`` environment variable is not set, and the
output goes to a terminal (a TTY) or the code runs in a Jupyter kernel. Then long fits, epoch
training and large batch predictions draw a :class:`rich.progress.Progress` bar; otherwise they
stay silent and cost nothing. In Jupyter, rich draws live bars through ``ipywidgets``; without it
installed the bar stays off rather than warn.

Use :func:`progress_bar` where the work is a known number of steps, or :func:`track` around an
iterable::

    from ml_toolbox.progress import progress_bar

    with progress_bar(verbose=self.verbose) as progress:
        task = progress.add_task("epochs", total=n_epochs)
        for epoch in range(n_epochs):
            ...
            progress.advance(task)

Both take ``console=`` (a :class:`rich.console.Console`), so tests render into
``Console(file=io.StringIO(), force_terminal=True)`` and assert the text.

Examples
--------
>>> is_watching(verbose=0)
False
>>> is_watching(verbose=1, env={"CI": "true"})
False
>>> list(track(range(3), "steps", verbose=0))
[0, 1, 2]
"""

from __future__ import annotations

import os
import sys

from .plugins import PipelinePlugin

__all__ = ["StageProgress", "is_watching", "in_notebook", "progress_bar", "track",
           "shrinking_text_column", "fixed"]

_FALSE = {"", "0", "false", "no", "off"}
BAR_WIDTH = 20  # characters: at 80 columns, room is left for the description or the metrics


def in_notebook():
    """Whether the code runs in a Jupyter kernel (IPython's ``ZMQInteractiveShell`` or similar).

    Returns
    -------
    bool
        True inside a Jupyter kernel, False in a terminal, a script or a plain IPython shell.

    Examples
    --------
    >>> in_notebook()
    False
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython too old or half-imported: no kernel we can tell
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _has_widgets():
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


def _in_ci(env=None):
    env = os.environ if env is None else env
    return str(env.get("CI", "")).strip().lower() not in _FALSE


def is_watching(verbose=1, *, stream=None, env=None, notebook=None, console=None):
    """Whether a person is watching: a progress display should be shown.

    Parameters
    ----------
    verbose : int or bool, default=1
        0 / False / None: never watching.
    stream : file-like, default=None
        Where the display would go (default ``sys.stderr``); a TTY means a person.
    env : mapping, default=None
        The environment to read ``CI`` from (default ``os.environ``); a set, non-false ``CI``
        means no person.
    notebook : bool, default=None
        Whether this runs in a Jupyter kernel (default: :func:`in_notebook`).
    console : rich.console.Console, default=None
        When given, the console decides instead of ``stream`` and ``notebook``: a person watches
        when it draws on a terminal or in Jupyter (``console.is_terminal`` / ``is_jupyter``).

    Returns
    -------
    bool
        True when a progress display should be drawn.

    Examples
    --------
    >>> import io
    >>> is_watching(1, stream=io.StringIO(), env={}, notebook=False)
    False
    >>> is_watching(1, stream=io.StringIO(), env={}, notebook=True)
    True
    >>> is_watching(1, stream=io.StringIO(), env={"CI": "false"}, notebook=True)
    True
    >>> from rich.console import Console
    >>> is_watching(1, env={}, console=Console(file=io.StringIO(), force_terminal=True))
    True
    """
    if not verbose or _in_ci(env):
        return False
    if console is not None:
        return bool(console.is_terminal or console.is_jupyter)
    if notebook is None:
        notebook = in_notebook()
    if notebook:
        return True
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def shrinking_text_column(template, *, style=None, separator=None):
    """A progress column of text that gives way first when the terminal is narrow.

    Rich shares a narrow terminal out among every column of a progress display, so at 80 columns
    long text (a stage's description, an epoch's metrics) used to wrap onto several lines or push
    the bar, the count and the time off the line. This column is the one rich shrinks first, and
    its text stays on one line, cut with an ellipsis; the other columns are given ``no_wrap``
    (:func:`fixed`) and keep their width.

    Parameters
    ----------
    template : str
        A :class:`rich.progress.TextColumn` template, e.g. ``"{task.fields[metrics]}"``.
    style : str, default=None
        A rich style for the whole text.
    separator : str, default=None
        When given, the text is a list of items joined by it (metrics: ``"  "``), and a narrow
        terminal drops whole items from the end, saying how many (``… +3``), rather than cutting
        one in the middle.

    Returns
    -------
    rich.progress.ProgressColumn
        The column, to pass to :class:`rich.progress.Progress` with the other columns.

    Examples
    --------
    >>> import io
    >>> from rich.console import Console
    >>> from rich.progress import Progress, TextColumn
    >>> console = Console(file=io.StringIO(), width=30)   # a file: only the last state is drawn
    >>> with Progress(shrinking_text_column("{task.description}"),
    ...               TextColumn("{task.completed:.0f} done", table_column=fixed()),
    ...               console=console) as progress:
    ...     _ = progress.add_task("a description far too long for the terminal")
    >>> console.file.getvalue().strip()
    'a description far too … 0 done'
    >>> console = Console(file=io.StringIO(), width=40)
    >>> with Progress(shrinking_text_column("{task.description}", separator="  "),
    ...               TextColumn("{task.completed:.0f} done", table_column=fixed()),
    ...               console=console) as progress:
    ...     _ = progress.add_task("loss=0.25  accuracy=0.91  f1=0.9  auc=0.97")
    >>> print(console.file.getvalue().strip())
    loss=0.25  accuracy=0.91 … +2 0 done
    """
    from rich.measure import Measurement
    from rich.progress import ProgressColumn
    from rich.table import Column
    from rich.text import Text

    def one_line(markup):
        text = Text.from_markup(markup, style=style or "", end="")
        text.no_wrap = True
        text.overflow = "ellipsis"
        return text

    class Items:
        """Whole items that fit the width it is given, and a count of the others."""

        def __init__(self, items):
            self.items = [one_line(item) for item in items]

        def __rich_measure__(self, console, options):
            full = sum(i.cell_len for i in self.items) + len(separator) * (len(self.items) - 1)
            return Measurement(min(1, full), max(0, full))

        def __rich_console__(self, console, options):
            width = options.max_width
            for keep in range(len(self.items), -1, -1):
                text = Text(separator).join(self.items[:keep])
                if keep < len(self.items):
                    text += Text(("" if keep == 0 else " ") + f"… +{len(self.items) - keep}")
                if text.cell_len <= width or keep == 0:
                    text.no_wrap, text.overflow, text.end = True, "ellipsis", ""
                    yield text
                    return

    class ShrinkingTextColumn(ProgressColumn):
        def render(self, task):
            markup = template.format(task=task)
            if separator is None:
                return one_line(markup)
            return Items([item for item in markup.split(separator) if item])

    # wrappable as a column (rich shrinks these first), yet one line as a text
    return ShrinkingTextColumn(table_column=Column(no_wrap=False, overflow="ellipsis", min_width=1))


def fixed():
    """Make a rich table column that keeps its width (``no_wrap``).

    Pass it as ``table_column=`` to the bar, count and time columns, so a narrow terminal shrinks
    the :func:`shrinking_text_column` instead.

    Returns
    -------
    rich.table.Column
        A column with ``no_wrap=True``.

    Examples
    --------
    >>> fixed().no_wrap
    True
    """
    from rich.table import Column

    return Column(no_wrap=True)


def progress_bar(*, verbose=1, console=None, transient=False, disable=None, env=None,
                 notebook=None, get_time=None):
    """A :class:`rich.progress.Progress` that shows only when a person is watching.

    Parameters
    ----------
    verbose : int or bool, default=1
        0 makes a disabled (silent) progress.
    console : rich.console.Console, default=None
        Where to draw (default: rich's console on stderr). Tests pass
        ``Console(file=io.StringIO(), force_terminal=True)``.
    transient : bool, default=False
        Remove the bar when done.
    disable : bool, default=None
        Force the display off (True) or on (False); None decides with :func:`is_watching`
        (on the console's file when a console is given).
    env : mapping, default=None
        The environment :func:`is_watching` reads ``CI`` from (default ``os.environ``).
    notebook : bool, default=None
        Whether this runs in a Jupyter kernel, for :func:`is_watching` (default: detected).
    get_time : callable, default=None
        Clock for rich (tests inject one).

    Returns
    -------
    rich.progress.Progress
        Use it as a context manager; ``add_task``, ``advance``, ``update`` as in rich.

    Examples
    --------
    >>> import io
    >>> from rich.console import Console
    >>> console = Console(file=io.StringIO(), force_terminal=True, width=80)
    >>> with progress_bar(console=console, disable=False) as progress:
    ...     task = progress.add_task("stages", total=2)
    ...     progress.advance(task, 2)
    >>> "stages" in console.file.getvalue()
    True
    """
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    if disable is None:
        if console is not None:  # the console knows whether it draws on a terminal or notebook
            watching = is_watching(verbose, env=env, console=console)
            jupyter = console.is_jupyter
        else:
            watching = is_watching(verbose, env=env, notebook=notebook)
            jupyter = in_notebook() if notebook is None else notebook
        if watching and jupyter and not _has_widgets():
            watching = False  # rich draws live bars in Jupyter through ipywidgets only
        disable = not watching
    kwargs = {"get_time": get_time} if get_time is not None else {}
    # at 80 columns the description shortens (with an ellipsis); the bar, count and times stay
    return Progress(SpinnerColumn(table_column=fixed()),
                    shrinking_text_column("{task.description}", style="progress.description"),
                    BarColumn(bar_width=BAR_WIDTH, table_column=fixed()),
                    MofNCompleteColumn(table_column=fixed()), TimeElapsedColumn(table_column=fixed()),
                    TimeRemainingColumn(table_column=fixed()), console=console, transient=transient,
                    disable=disable, **kwargs)


def track(iterable, description="working", *, total=None, verbose=1, console=None,
          transient=False, disable=None, env=None, notebook=None):
    """Iterate over ``iterable``, drawing a progress bar when a person is watching.

    When nobody is watching, this is the plain iterable: no bar, no thread, no cost.

    Parameters
    ----------
    iterable : iterable
        The items to go through.
    description : str, default="working"
        The text shown before the bar.
    total : int, default=None
        Number of items (default ``len(iterable)`` when it has one).
    verbose : int or bool, default=1
        0 draws nothing, as for :func:`progress_bar`.
    console : rich.console.Console, default=None
        Where to draw (default: rich's console on stderr).
    transient : bool, default=False
        Remove the bar when done.
    disable : bool, default=None
        Force the display off (True) or on (False); None decides with :func:`is_watching`.
    env : mapping, default=None
        The environment :func:`is_watching` reads ``CI`` from (default ``os.environ``).
    notebook : bool, default=None
        Whether this runs in a Jupyter kernel (default: detected).

    Yields
    ------
    object
        The items of ``iterable``.

    Examples
    --------
    >>> import io
    >>> from rich.console import Console
    >>> console = Console(file=io.StringIO(), force_terminal=True, width=80)
    >>> sum(track(range(4), "batches", console=console, disable=False))
    6
    >>> "batches" in console.file.getvalue()
    True
    """
    progress = progress_bar(verbose=verbose, console=console, transient=transient,
                            disable=disable, env=env, notebook=notebook)
    if progress.disable:
        yield from iterable
        return
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with progress:
        yield from progress.track(iterable, total=total, description=description)


class StageProgress(PipelinePlugin):
    """A plug-in that draws one progress bar per fitting run: a step per stage.

    ``UnifiedMLPipeline(verbose=1)`` attaches one to its pipelines while it fits, when a person is
    watching (:func:`is_watching`); nothing is drawn, and nothing attached, otherwise. Serving
    (predict, transform) is never drawn: it is short, and it should stay on the fast path.

    Parameters
    ----------
    console : rich.console.Console, default=None
        Where to draw (default: rich's console on stderr).
    disable : bool, default=None
        Force the display off (True) or on (False); None draws only when a person is watching,
        as for :func:`progress_bar`.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from rich.console import Console
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline
    >>> console = Console(file=io.StringIO(), force_terminal=True, width=80)
    >>> fp = FeaturePipeline([("scale", StandardScaler())],
    ...                      monitor=StageProgress(console=console, disable=False))
    >>> _ = fp.fit(np.array([[1.0], [2.0]]))
    >>> "feature_pipeline fit" in console.file.getvalue()
    True
    """

    FITTING_MODES = ("fit", "partial_fit")

    def __init__(self, console=None, disable=None):
        self.console = console
        self.disable = disable
        self._bars = {}

    def before_run(self, run):
        """Start a bar for a fitting run, a step per stage (other runs draw nothing).

        Parameters
        ----------
        run : RunContext
            The pipeline run.
        """
        if run.mode not in self.FITTING_MODES:
            return
        bar = progress_bar(console=self.console, disable=self.disable)
        bar.start()
        task = bar.add_task(f"{run.pipeline_name} {run.mode}", total=len(run.stage_names))
        self._bars[run.run_id] = (bar, task)

    def after_stage(self, ctx):
        """Advance the run's bar by one step, naming the stage done.

        Parameters
        ----------
        ctx : StageContext
            The stage run that ended.
        """
        entry = self._bars.get(ctx.run.run_id)
        if entry is not None:
            entry[0].update(entry[1], advance=1, description=(
                f"{ctx.pipeline_name} {ctx.run.mode}: {ctx.stage_name} done"))

    def _close(self, run):
        entry = self._bars.pop(run.run_id, None)
        if entry is not None:
            entry[0].stop()

    def after_run(self, run):
        """Stop the run's bar.

        Parameters
        ----------
        run : RunContext
            The pipeline run.
        """
        self._close(run)

    def on_run_error(self, run, error):
        """Stop the run's bar; the error propagates as it is.

        Parameters
        ----------
        run : RunContext
            The pipeline run.
        error : BaseException
            The error that ended the run.
        """
        self._close(run)
