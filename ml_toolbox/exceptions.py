"""Errors ml_toolbox raises itself. Each subclasses the built-in a caller would catch.

Errors raised *by a stage* are never wrapped: the user gets the stage's own exception, with a note
(``add_note``) naming the pipeline, the stage and the mode, and its ``__cause__`` untouched.
"""

from sklearn.exceptions import NotFittedError

__all__ = ["InputSchemaError", "StageDefinitionError", "NotFittedError", "describe_owner"]


class InputSchemaError(ValueError):
    """Input does not match the schema a pipeline recorded at fit time (columns, dtypes, width)."""


class StageDefinitionError(TypeError):
    """A step is neither a scikit-learn estimator nor a callable, or its definition is invalid."""


def describe_owner(pipeline):
    """Return how error messages name a pipeline: its class and, when it has one, its name.

    Parameters
    ----------
    pipeline : object
        The pipeline (or any estimator).

    Returns
    -------
    str
        ``"UnifiedMLPipeline 'churn'"``, or the class name alone.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox import FeaturePipeline
    >>> describe_owner(FeaturePipeline([], name="features")), describe_owner(LogisticRegression())
    ("FeaturePipeline 'features'", 'LogisticRegression')
    """
    name = getattr(pipeline, "name", None)
    cls = type(pipeline).__name__
    return f"{cls} {name!r}" if name else cls


def annotate(error, pipeline_name, stage_name, mode, parent=None):
    """Add the pipeline / stage / mode to a stage's error without changing its type or message.

    ``parent`` (the :class:`~ml_toolbox.UnifiedMLPipeline` an inner pipeline runs for) is the
    pipeline the note names: ``"pipeline 'churn' (its inference_pipeline)"``.
    """
    if isinstance(error, Exception) and not getattr(error, "_ml_toolbox_annotated", False):
        error.add_note(_note(pipeline_name, stage_name, mode, parent))
        try:
            error._ml_toolbox_annotated = (pipeline_name, stage_name, mode)
        except AttributeError:  # exceptions with __slots__
            pass
    return error


def pipeline_label(pipeline_name, parent=None):
    """How messages name the pipeline a stage runs in: the user's pipeline first.

    Parameters
    ----------
    pipeline_name : str
        The name of the pipeline running the stage (an inner one, e.g. ``"inference_pipeline"``).
    parent : object, optional
        The pipeline it runs for (a :class:`~ml_toolbox.UnifiedMLPipeline`), if any.

    Returns
    -------
    str
        ``"'churn' (its inference_pipeline)"`` when ``parent`` has another name, else
        ``"'inference_pipeline'"``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> pipeline_label("inference_pipeline", SimpleNamespace(name="churn"))
    "'churn' (its inference_pipeline)"
    """
    outer = getattr(parent, "name", None)
    return repr(pipeline_name) if not outer or outer == pipeline_name \
        else f"{outer!r} (its {pipeline_name})"


def _note(pipeline_name, stage_name, mode, parent=None):
    where = pipeline_label(pipeline_name, parent)
    return f"[ml_toolbox] raised by stage {stage_name!r} of pipeline {where} during {mode}"


def note_step(error, pipeline_name, stage_name, mode, position, n_steps, method, parent=None):
    """Give a step's error the note naming the pipeline, the step, its position and the method.

    The note of a :class:`~ml_toolbox.Pipeline`: ``"[ml_toolbox] raised by stage 'scale' of
    pipeline 'iris' during transform (step 1 of 2, in predict)"``. It replaces the shorter note
    :func:`annotate` added for the same pipeline and step (the execution loop's, the fast
    plan's); the type, message and cause of ``error`` stay as they are. An error another
    pipeline already placed its note on (a step that is a pipeline itself) keeps that note only.

    Parameters
    ----------
    error : Exception
        The error a step raised.
    pipeline_name : str
        The pipeline's ``name``.
    stage_name : str
        The step's name.
    mode : str
        The step's method that raised (``"transform"``, ``"fit"``, ``"predict"``...).
    position : int
        The step's position in the pipeline, from 0.
    n_steps : int
        How many steps the pipeline has.
    method : str
        The pipeline's method that was called.
    parent : object, optional
        The pipeline ``pipeline_name`` runs for (a :class:`~ml_toolbox.UnifiedMLPipeline`), as
        for :func:`annotate`; ``position`` and ``n_steps`` are then over its whole chain.

    Returns
    -------
    Exception
        ``error``.

    Examples
    --------
    >>> error = note_step(ValueError("bad"), "iris", "scale", "transform", 0, 2, "predict")
    >>> error.__notes__
    ["[ml_toolbox] raised by stage 'scale' of pipeline 'iris' during transform (step 1 of 2, in predict)"]
    """
    if not isinstance(error, Exception) or getattr(error, "_ml_toolbox_placed", False):
        return error
    annotated = getattr(error, "_ml_toolbox_annotated", None)
    notes = getattr(error, "__notes__", None)
    if type(annotated) is tuple and annotated[:2] == (pipeline_name, stage_name) and notes:
        old = (_note(*annotated), _note(*annotated, parent))
        error.__notes__ = [n for n in notes if n not in old]
    error.add_note(f"{_note(pipeline_name, stage_name, mode, parent)} (step {position + 1} of "
                   f"{n_steps}, in {method})")
    try:
        error._ml_toolbox_annotated = (pipeline_name, stage_name, mode)
        error._ml_toolbox_placed = True
    except AttributeError:  # exceptions with __slots__
        pass
    return error


def name_parent(error, parent):
    """Make the note an inner pipeline added to ``error`` name ``parent`` (the user's pipeline)
    instead; for errors annotated where the parent was not known (the fast inference plan)."""
    annotated = getattr(error, "_ml_toolbox_annotated", None)
    if type(annotated) is not tuple:
        return error
    notes = getattr(error, "__notes__", None)
    old, new = _note(*annotated), _note(*annotated, parent)
    if notes and old != new:
        error.__notes__ = [new if n == old else n for n in notes]
    return error
