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
    """``"UnifiedMLPipeline 'churn'"``: how messages name a pipeline."""
    name = getattr(pipeline, "name", None)
    cls = type(pipeline).__name__
    return f"{cls} {name!r}" if name else cls


def annotate(error, pipeline_name, stage_name, mode):
    """Add the pipeline / stage / mode to a stage's error without changing its type or message."""
    if isinstance(error, Exception) and not getattr(error, "_ml_toolbox_annotated", False):
        error.add_note(f"[ml_toolbox] raised by stage {stage_name!r} of pipeline {pipeline_name!r} "
                       f"during {mode}")
        try:
            error._ml_toolbox_annotated = True
        except AttributeError:  # exceptions with __slots__
            pass
    return error
