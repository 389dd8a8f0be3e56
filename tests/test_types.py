"""The package type-checks: mypy, at the level pyproject.toml sets and docs/index.md ("Types") explains."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_finds_no_errors():
    pytest.importorskip("mypy")
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-color-output", "--no-error-summary"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


@pytest.mark.slow
def test_the_configured_level_still_reports_errors(tmp_path):
    """The configuration checks what it says: an annotated function's mistake is an error."""
    pytest.importorskip("mypy")
    (tmp_path / "wrong.py").write_text("def f(x: int) -> str:\n    return x\n")
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-color-output",
                           "--cache-dir", str(tmp_path / "cache"), str(tmp_path / "wrong.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert 'Incompatible return value type (got "int", expected "str")' in done.stdout


def test_package_is_typed():
    import ml_toolbox

    assert (Path(ml_toolbox.__file__).parent / "py.typed").is_file()
