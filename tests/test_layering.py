"""The import rules between the pipelines and their displays (issue 16, item 6).

Objects describe themselves (``_describe_()``, a plain description) and :mod:`ml_toolbox.display`
draws descriptions: the renderer imports no pipeline module, and the pipelines do not import the
renderer. No function-level import remains only to dodge an import cycle: the ones left load an
opt-in feature on first use, each listed here with its reason.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ml_toolbox

PACKAGE = Path(ml_toolbox.__file__).parent
PIPELINE_MODULES = ("pipeline", "base", "stage", "unified", "feature", "training", "inference")
# Function-level imports of the pipeline modules that stay, and why (none dodges a cycle).
LAZY_ALLOWED = {
    ("pipeline", "persistence"): "the versioned store (blake3, filelock, fsspec I/O) loads on the "
                                 "first save or load",
    ("unified", "persistence"): "as above",
    ("unified", "runs._active"): "the run store loads only when tracking= is set",
}


def imports(module):
    """``[(imported module, at top level?)]`` of ml_toolbox.<module>, relative names resolved."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level == 0 and name.startswith("ml_toolbox."):
                name = name[len("ml_toolbox."):]
            elif node.level == 0:
                continue
            names = [name] if name else [alias.name for alias in node.names]
            found += [(n, id(node) in top) for n in names]
        elif isinstance(node, ast.Import):
            found += [(alias.name[len("ml_toolbox."):], id(node) in top)
                      for alias in node.names if alias.name.startswith("ml_toolbox.")]
    return found


def test_the_renderer_imports_no_pipeline_module():
    imported = {name for name, _ in imports("display")}
    assert imported.isdisjoint(PIPELINE_MODULES), imported
    assert imported <= {"_describe"}, imported


@pytest.mark.parametrize("module", PIPELINE_MODULES)
def test_pipelines_do_not_import_the_renderer(module):
    assert "display" not in {name for name, _ in imports(module)}


@pytest.mark.parametrize("module", [*PIPELINE_MODULES, "display"])
def test_no_function_level_import_is_left_to_dodge_a_cycle(module):
    lazy = {(module, name) for name, top in imports(module) if not top}
    assert lazy <= set(LAZY_ALLOWED), sorted(lazy - set(LAZY_ALLOWED))


FIRST_IMPORTS = [*PIPELINE_MODULES, "display", "_describe", "_split", "lifecycle", "config"]
_FRESH = """
import importlib, sys
for module in sys.argv[1:]:
    for name in [n for n in sys.modules if n == "ml_toolbox" or n.startswith("ml_toolbox.")]:
        del sys.modules[name]
    importlib.import_module("ml_toolbox." + module)
"""


def test_each_module_imports_first():
    """No order of first imports meets a cycle (a module imported half-way): each module is
    imported first into an interpreter holding no ml_toolbox module (one process, so
    scikit-learn and friends load once)."""
    subprocess.run([sys.executable, "-c", _FRESH, *FIRST_IMPORTS], check=True, timeout=600)


def test_every_pipeline_and_stage_describes_itself_plainly():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from ml_toolbox import (FeaturePipeline, InferencePipeline, Pipeline, PipelineStage,
                            TrainingPipeline, UnifiedMLPipeline)

    objects = [PipelineStage(StandardScaler(), name="scale"),
               FeaturePipeline([("scale", StandardScaler())]),
               TrainingPipeline(model=LogisticRegression()), InferencePipeline(),
               UnifiedMLPipeline(features=[("scale", StandardScaler())],
                                 model=LogisticRegression()),
               Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])]
    plain_types = (str, int, float, bool, type(None), list, tuple, dict)
    for obj in objects:
        plain = obj._describe_()
        assert set(plain) == {"title", "fitted", "rows", "metrics", "facts", "timings", "hint"}
        for row in plain["rows"]:
            assert all(isinstance(v, plain_types) for v in row.values()), row
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in plain["facts"])
