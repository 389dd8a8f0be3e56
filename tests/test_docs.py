"""The guide pages whose examples are plain ```python blocks run, in order, as a reader pastes them.

(Pages written as doctests run through pytest's --doctest-glob; training.md has its own test next
to the feature's tests.)
"""

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("page", ["inference.md", "orchestration.md", "monitoring.md", "runs.md"])
def test_guide_blocks_run_in_order(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)
    assert blocks, f"{page} has no python blocks"
    namespace = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/{page} block {i}", "exec"), namespace)  # noqa: S102 - our docs
