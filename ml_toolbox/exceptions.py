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


def _note(pipeline_name, stage_name, mode, parent=None):
    outer = getattr(parent, "name", None)
    where = repr(pipeline_name) if not outer or outer == pipeline_name \
        else f"{outer!r} (its {pipeline_name})"
    return f"[ml_toolbox] raised by stage {stage_name!r} of pipeline {where} during {mode}"


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
