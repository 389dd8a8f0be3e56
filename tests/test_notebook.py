"""examples/tour.ipynb runs top to bottom in a real Jupyter kernel, and its displays render."""

import json
import pathlib
import re
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

TOUR = pathlib.Path(__file__).parent.parent / "examples" / "tour.ipynb"
CELL_TIMEOUT = 60  # seconds per cell; the whole tour takes well under a minute
KERNEL = "ml-toolbox-test"


def kernel_manager(tmp_path):
    """A kernel running *this* Python (the venv's), whatever kernelspecs the user has installed."""
    spec_dir = tmp_path / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ml_toolbox tests", "language": "python"}))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("tour")
    nb = nbformat.read(TOUR, as_version=4)
    client = NotebookClient(nb, km=kernel_manager(tmp_path), timeout=CELL_TIMEOUT,
                            allow_errors=False, resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as error:  # the failing cell's source and traceback, in full
        pytest.fail(f"examples/tour.ipynb failed:\n{error}", pytrace=False)
    return nb


def outputs(cell):
    return cell.get("outputs", [])


def test_every_code_cell_ran_without_error(executed):
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert code, "the tour has code cells"
    for cell in code:
        assert cell.execution_count is not None, cell.source
        assert not [o for o in outputs(cell) if o.output_type == "error"], cell.source


def test_notebook_is_valid_and_committed_without_outputs():
    nb = nbformat.read(TOUR, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, \
                "commit examples/tour.ipynb with its outputs cleared"


def test_pipeline_displays_render_in_the_notebook(executed):
    html = [o["data"]["text/html"] for c in executed.cells for o in outputs(c)
            if "data" in o and "text/html" in o["data"]]
    states = [h for h in html if '<div class="mlt-state">' in h]
    assert any("not fitted" in h for h in states), "the unfitted pipeline shows its state"
    assert any('<span class="fitted">fitted</span>' in h and "train_accuracy" in h
               for h in states), "the fitted pipeline shows its metrics"
    assert all("sk-container" in h for h in states), "scikit-learn's diagram comes first"
    # with the monitor attached: where the time went, per stage, in the last fit and prediction
    assert any("<th>last fit</th><th>last predict</th>" in h and "<b>plug-ins:</b> monitor" in h
               for h in states)
    # the flaky stage took two attempts, and the display says so
    assert any(re.search(r"<td><b>remote</b></td>.*?\(2 attempts\)</td>", h) for h in states)


def test_the_tour_reports_what_it_did(executed):
    text = "".join(o.get("text", "") for c in executed.cells for o in outputs(c)
                   if o.output_type == "stream")
    assert "held-out accuracy: 0.958" in text
    assert "missing column(s) ['mean radius']" in text
    assert "numpy kernel for LogisticRegression.predict_proba" in text
    # the flaky stage failed once and the fit recovered through retry
    assert "Retrying stage 'remote' of 'unified_pipeline' (its feature_pipeline) (attempt 2 of 4)" \
        in text
    assert "'retries': 1, 'successes': 1, 'successes_after_retry': 1, 'failures': 0" in text
    assert re.search(r"51 predictions; model stage P50 \d+ µs, P95 \d+ µs", text)
    # epochs over partial_fit: early stopping ends the run and keeps the best epoch
    assert re.search(r"stopped after \d+ epochs; best epoch \d+; held-out accuracy 0\.\d{3}", text)
    # versions: the gate refused the weaker candidate; promoted anyway, then rolled back
    assert "Refusing to promote 'breast_cancer' version 2 to 'production': gate " \
        "accuracy>=current failed" in text
    assert "production is version 1" in text
    plain = "".join(o["data"].get("text/plain", "") for c in executed.cells for o in outputs(c)
                    if "data" in o)
    # the debugger's snapshot of what 'impute' received while fitting: the holes the tour made
    assert "<Snapshot feature_pipeline/impute before fit_transform attempt 1: DataFrame (426, 30)" \
        in plain
    assert re.search(r"mean radius\s+float64\s+18\s", plain)


def test_a_failing_cell_fails_the_run(tmp_path):
    """The harness itself: a cell that raises stops the run with that cell's error."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell("raise OSError('boom')")])
    client = NotebookClient(nb, km=kernel_manager(tmp_path), timeout=CELL_TIMEOUT)
    with pytest.raises(CellExecutionError, match=r"raise OSError\('boom'\)") as caught:
        client.execute()
    assert (caught.value.ename, caught.value.evalue) == ("OSError", "boom")
