"""docs/api.md is generated from the numpydoc docstrings, and the committed file is up to date."""

import pathlib
import subprocess
import sys

import ml_toolbox
from ml_toolbox import _apidoc

API_MD = pathlib.Path(__file__).parent.parent / "docs" / "api.md"


def test_committed_api_md_is_up_to_date():
    assert API_MD.read_text(encoding="utf-8") == _apidoc.build(), (
        "docs/api.md is out of date: run `python -m ml_toolbox._apidoc` (or `make docs`) and "
        "commit it.")


def test_every_public_name_is_documented():
    text = _apidoc.build()
    for name in ml_toolbox.__all__:
        assert f"### `{name}`" in text or f"- `{name}` (module" in text, name


def test_sections_render():
    text = _apidoc.build()
    unified = text[text.index("### `UnifiedMLPipeline`"):text.index("### `MLToolbox`")]
    assert "class UnifiedMLPipeline(toolbox=None, *, features=None, model=None" in unified
    assert "- **features** (list, FeaturePipeline, \"passthrough\" or None, default=None): " \
        "The feature stages" in unified
    assert "#### Attributes" in unified and "- **metrics_** (dict): " in unified
    assert "#### `UnifiedMLPipeline.execute`" in unified
    assert "```pycon\n>>> from sklearn.datasets import load_iris" in unified
    assert ":class:" not in text and "``" not in text.replace("```", "")


def test_sections_render_from_numpydoc_docscrape():
    text = _apidoc.render_docstring("""Do a thing.

    Longer text
    over two lines.

    Second paragraph.

    Parameters
    ----------
    a : int
        First, a :class:`~sklearn.base.BaseEstimator`.
        Still first.
    b
        No type.

    Returns
    -------
    out : float

    Raises
    ------
    ValueError
        When a is negative.

    See Also
    --------
    other : Does another thing.

    Examples
    --------
    Some prose.

    >>> 1 + 1
    2
    """, level=2)
    assert text.split("\n\n") == [
        "Do a thing.", "Longer text\nover two lines.", "Second paragraph.",
        "### Parameters", "- **a** (int): First, a `BaseEstimator`. Still first.\n- **b**: No type.",
        "### Returns", "- **out** (float)",
        "### Raises", "- ValueError: When a is negative.",
        "### See Also", "- `other`: Does another thing.",
        "### Examples", "Some prose.", "```pycon\n>>> 1 + 1\n2\n```"]


def test_the_hand_written_parser_is_gone():
    assert not hasattr(_apidoc, "parse_docstring")
    assert _apidoc.NumpyDocString.__module__ == "numpydoc.docscrape"


def test_check_mode_reports_a_stale_file(tmp_path):
    stale = tmp_path / "api.md"
    stale.write_text("# old\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "ml_toolbox._apidoc", "--check", "--output",
                           str(stale)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "is out of date: run `python -m ml_toolbox._apidoc`" in done.stderr
    assert _apidoc.main(["--output", str(stale)]) == 0
    assert _apidoc.main(["--check", "--output", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == _apidoc.build()
