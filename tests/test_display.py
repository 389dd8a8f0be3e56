"""Each display renders: the HTML (scikit-learn's diagram + state table) and the rich text."""

import io
import re

import numpy as np
import pytest
import sklearn
from rich.console import Console
from sklearn.datasets import load_iris
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ml_toolbox import (FeaturePipeline, InferencePipeline, PipelineStage, TrainingPipeline,
                        UnifiedMLPipeline)
from ml_toolbox.display import (PipelineView, StageRow, describe, format_seconds, pipeline_html,
                                render_html, render_rich)
from ml_toolbox._kernels import _KERNEL_VERSION_OK
from ml_toolbox.plugins import PipelinePlugin

# Kernels are checked against scikit-learn >= 1.8; older versions run every stage's own method
_KERNELS = _KERNEL_VERSION_OK

from _versions import needs_kernels


def rich_text(obj, width=120):
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(obj)
    return console.file.getvalue()


def state_table(html_text):
    """The part of the HTML that ml_toolbox adds after scikit-learn's diagram."""
    assert '<div class="mlt-state">' in html_text
    return html_text[html_text.index('<div class="mlt-state">'):]


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True, as_frame=True)


def unified(**kwargs):
    return UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(max_iter=500), **kwargs)


class RecordingMonitor(PipelinePlugin):
    """The monitor's public reading API, reduced: ``history(name)`` of executions with stages.

    Records what the execution loop reports, with durations from an injected clock so the
    rendered timings are exact.
    """

    def __init__(self, durations):
        self.durations = iter(durations)
        self.runs = {}

    class Run:
        def __init__(self, name, mode):
            self.pipeline_name, self.mode, self.stages, self.duration = name, mode, [], 0.0

    class Record:
        def __init__(self, name, duration, status, attempts):
            self.stage_name, self.duration, self.status, self.attempts = \
                name, duration, status, attempts

    def before_run(self, run):
        self.current = self.Run(run.pipeline_name, run.mode)
        self.runs.setdefault(run.pipeline_name, []).append(self.current)

    def after_stage(self, ctx):
        duration = next(self.durations)
        self.current.stages.append(self.Record(ctx.stage_name, duration, "success", ctx.attempt))
        self.current.duration += duration

    def on_stage_error(self, ctx, error):
        self.current.stages.append(self.Record(ctx.stage_name, next(self.durations), "failed",
                                               ctx.attempt))

    def history(self, name=None):
        if name not in self.runs:
            raise KeyError(name)
        return list(self.runs[name])


# -- the view ------------------------------------------------------------------------------------

def test_unfitted_unified_view_lists_stages_and_model():
    view = describe(unified())
    assert view.title == "UnifiedMLPipeline 'unified_pipeline'"
    assert not view.fitted
    assert [(r.name, r.estimator, r.fitted) for r in view.rows] == [
        ("impute", "SimpleImputer", False), ("scale", "StandardScaler", False),
        ("model", "LogisticRegression", False)]
    assert view.timing_columns == [] and view.metrics == {}
    assert view.hint == "attach a PipelineMonitor to see where the time goes"


def test_fitted_unified_view_has_features_metrics_and_fast_path(iris):
    X, y = iris
    pipe = unified(scoring="accuracy").fit(X, y)
    view = describe(pipe)
    assert view.fitted
    assert [(r.name, r.fitted, r.n_in, r.n_out) for r in view.rows] == [
        ("impute", True, 4, 4), ("scale", True, 4, 4), ("model", True, 4, None)]
    assert list(view.metrics) == ["train_accuracy"]
    facts = dict(view.facts)
    assert facts["input"] == "4 features (DataFrame columns, checked at every call)"
    if _KERNELS:
        assert facts["fast inference"] == "on: 3 of 3 stage(s) on numpy kernels"
    else:
        assert facts["fast inference"] == ("on: 0 of 3 stage(s) on numpy kernels, the others "
                                           "through their own methods")
    assert facts["plug-ins"] == "none"


@needs_kernels
def test_fast_fact_names_stages_off_the_kernels(iris):
    from sklearn.neighbors import KNeighborsClassifier

    X, y = iris
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=KNeighborsClassifier()).fit(X, y)
    assert dict(describe(pipe).facts)["fast inference"] == \
        "on: 1 of 2 stage(s) on numpy kernels, the others through their own methods"


def test_default_toolbox_pipeline_says_the_model_is_chosen_at_fit():
    view = describe(UnifiedMLPipeline())
    assert [(r.name, r.estimator) for r in view.rows] == [
        ("preprocessing", "AutoPreprocessor"), ("model", "chosen at fit by the toolbox")]


def test_describe_rejects_other_objects():
    with pytest.raises(TypeError, match=re.escape(
            "describe() takes a PipelineStage or an ml_toolbox pipeline, got "
            "StandardScaler: StandardScaler().")):
        describe(StandardScaler())


def test_monitor_timings_for_fit_and_predict(iris):
    X, y = iris
    # impute, scale (fit), model (fit), then impute, scale, model (predict)
    monitor = RecordingMonitor([0.0021, 0.0005, 1.5, 0.00004, 0.00003, 0.0002])
    pipe = unified(monitor=monitor).fit(X, y)
    pipe.predict(X.iloc[:5])
    view = describe(pipe)
    assert view.timing_columns == ["last fit", "last predict"]
    fit = {r.name: format_seconds(r.timings["last fit"].duration) for r in view.rows}
    assert fit == {"impute": "2.1 ms", "scale": "500 µs", "model": "1.5 s"}
    assert view.run_totals["last fit"] == pytest.approx(0.0021 + 0.0005 + 1.5)
    assert view.hint is None
    assert dict(view.facts)["plug-ins"] == "monitor"
    assert dict(view.facts)["fast inference"] == (
        ("on: 3 of 3 stage(s) on numpy kernels" if _KERNELS else
         "on: 0 of 3 stage(s) on numpy kernels, the others through their own methods")
        + " (stage by stage, so the plug-ins see every stage)")
    text = rich_text(pipe)
    assert re.search(r"impute\s+SimpleImputer\s+yes\s+4\s+4\s+2\.1 ms\s+40 µs", text), text
    assert re.search(r"model\s+LogisticRegression\s+yes\s+4\s+—\s+1\.5 s\s+200 µs", text), text
    assert re.search(r"total\s+1\.5 s\s+270 µs", text), text
    narrow = rich_text(pipe, width=80)  # an 80-column terminal: headers wrap, names and times don't
    assert re.search(r"model\s+LogisticRegression\s+yes\s+4\s+—\s+1\.5 s\s+200 µs", narrow), narrow
    table = state_table(pipe._repr_html_())
    assert "<th>last fit</th><th>last predict</th>" in table
    assert '<td class="num">2.1 ms</td><td class="num">40 µs</td>' in table


def test_failed_stage_and_attempts_show_in_the_timings():
    class Flaky(StandardScaler):
        def fit_transform(self, X, y=None):
            raise OSError("share unavailable")

    monitor = RecordingMonitor([0.25, 0.5])
    fp = FeaturePipeline([("scale", StandardScaler()), ("flaky", Flaky())], monitor=monitor)
    with pytest.raises(OSError, match="share unavailable"):
        fp.fit(np.ones((3, 2)))
    view = describe(fp)
    assert not view.fitted
    assert view.timing_columns == ["last fit"]
    assert [r.timings["last fit"].status for r in view.rows] == ["success", "failed"]
    text = rich_text(fp)
    assert re.search(r"flaky\s+Flaky\s+no\s+—\s+—\s+500 ms failed", text), text
    assert '<td class="num failed">500 ms failed</td>' in state_table(fp._repr_html_())

    row = StageRow(0, "s", "X", True, timings={"last fit": RecordingMonitor.Record(
        "s", 0.003, "success", 3)})
    view = PipelineView("T", True, [row], ["last fit"], {"last fit": 0.003})
    assert "3 ms (3 attempts)" in rich_text(render_rich(view))
    assert "3 ms (3 attempts)" in render_html(view)


# -- each pipeline renders, in HTML and in rich --------------------------------------------------

def test_stage_displays():
    stage = PipelineStage(StandardScaler(), name="scale", retry=False, timeout=2.0)
    text = rich_text(stage)
    assert "PipelineStage 'scale' · not fitted" in text
    assert re.search(r"scale\s+StandardScaler\s+no", text)
    assert "retry: off for this stage" in text and "timeout: 2 s" in text
    stage.fit(np.array([[1.0, 2.0], [3.0, 5.0]]))
    text = rich_text(stage)
    assert "PipelineStage 'scale' · fitted" in text
    assert re.search(r"scale\s+StandardScaler\s+yes\s+2\s+2", text), text
    html_text = stage._repr_html_()
    assert "sk-container" in html_text  # scikit-learn's diagram first
    assert "<strong>PipelineStage &#x27;scale&#x27;</strong>" in state_table(html_text)


def test_feature_pipeline_displays(iris):
    X, _ = iris
    fp = FeaturePipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    assert "FeaturePipeline 'feature_pipeline' · not fitted" in rich_text(fp)
    fp.fit(X)
    text = rich_text(fp)
    assert "FeaturePipeline 'feature_pipeline' · fitted" in text
    assert re.search(r"scale\s+StandardScaler\s+yes\s+4\s+4", text)
    assert "plug-ins: none" in text
    html_text = fp._repr_html_()
    diagram = html_text[:html_text.index('<div class="mlt-state">')]
    assert "sklearn.impute.SimpleImputer.html" in diagram  # scikit-learn's diagram of the stages
    assert "sklearn.preprocessing.StandardScaler.html" in diagram
    table = state_table(html_text)
    assert "<th>features in</th><th>features out</th>" in table
    assert "<td><b>scale</b></td><td>StandardScaler</td>" in table


def test_training_pipeline_displays_metrics(iris):
    X, y = iris
    tp = TrainingPipeline(LogisticRegression(max_iter=500), scoring=["accuracy", "f1_macro"])
    assert re.search(r"model\s+LogisticRegression\s+no", rich_text(tp))
    tp.fit(X, y)
    text = rich_text(tp)
    acc = tp.metrics_["train_accuracy"]
    assert f"metrics: train_accuracy = {acc:.4g},  train_f1_macro = " in text
    assert f"<b>metrics:</b> train_accuracy = {acc:.4g}, train_f1_macro = " in \
        state_table(tp._repr_html_())


def test_training_pipeline_without_model_still_renders():
    text = rich_text(TrainingPipeline())
    assert "TrainingPipeline 'training_pipeline' · not fitted" in text


@needs_kernels
def test_inference_pipeline_displays(iris):
    X, y = iris
    ip = InferencePipeline(FeaturePipeline([("scale", StandardScaler())]),
                           TrainingPipeline(LogisticRegression(max_iter=500)))
    assert "InferencePipeline 'inference_pipeline' · not fitted" in rich_text(ip)
    ip.fit(X, y)
    text = rich_text(ip)
    assert re.search(r"scale\s+StandardScaler\s+yes\s+4\s+4", text)
    assert re.search(r"model\s+LogisticRegression\s+yes\s+4", text)
    assert "fast inference: on: 2 of 2 stage(s) on numpy kernels" in text
    ip.set_params(fast=False)
    assert "fast inference: off (fast=False)" in rich_text(ip)
    assert "<b>fast inference:</b> off (fast=False)" in state_table(ip._repr_html_())
    ip.set_params(fast=True)
    ip.stages_[0].timeout = 5.0  # a stage timeout takes the execution loop
    assert "fast inference: not used: a stage has a timeout, or a retry policy covers a stage " \
        "running your own code" in rich_text(ip, width=200)
    ip.stages_[0].timeout = None
    ip.set_params(fast=False)
    assert "<b>fast inference:</b> off (fast=False)" in state_table(ip._repr_html_())


def test_unified_displays(iris):
    X, y = iris
    pipe = unified(scoring="accuracy")
    html_text = pipe._repr_html_()
    assert "UnifiedMLPipeline &#x27;unified_pipeline&#x27;</strong> · " \
        '<span class="unfitted">not fitted</span>' in state_table(html_text)
    pipe.fit(X, y)
    text = rich_text(pipe)
    assert "UnifiedMLPipeline 'unified_pipeline' · fitted" in text
    assert "input: 4 features (DataFrame columns, checked at every call)" in text
    assert "attach a PipelineMonitor to see where the time goes" in text
    html_text = pipe._repr_html_()
    assert "sklearn.linear_model.LogisticRegression.html" in html_text  # the diagram
    assert '<span class="fitted">fitted</span>' in state_table(html_text)
    # Jupyter asks for the mime bundle first: the same HTML.
    bundle = pipe._repr_mimebundle_()
    assert '<div class="mlt-state">' in bundle["text/html"]
    pipe.set_params(fast_inference=False)
    assert "fast inference: off (fast_inference=False)" in rich_text(pipe)


def test_html_escapes_names():
    fp = FeaturePipeline([("<b>x</b>", StandardScaler())], name="a<script>")
    table = state_table(pipeline_html(fp))
    assert "<script>" not in table
    assert "&lt;b&gt;x&lt;/b&gt;" in table and "a&lt;script&gt;" in table


def test_text_display_config_turns_the_html_off():
    fp = FeaturePipeline([("scale", StandardScaler())])
    with sklearn.config_context(display="text"):
        assert not hasattr(fp, "_repr_html_")
    assert hasattr(fp, "_repr_html_")


def test_rich_markup_in_names_is_not_interpreted():
    fp = FeaturePipeline([("[bold]x[/bold]", StandardScaler())], name="[red]p[/red]")
    text = rich_text(fp)
    assert "[bold]x[/bold]" in text and "[red]p[/red]" in text


@pytest.mark.parametrize("seconds, text", [
    (None, "—"), (0.0, "0 µs"), (4e-6, "4 µs"), (0.000999, "999 µs"), (0.001, "1 ms"),
    (0.0456, "45.6 ms"), (1.0, "1 s"), (59.9, "59.9 s"), (61.0, "1 min 1 s")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_timings_from_the_real_monitor(iris):
    from ml_toolbox import PipelineMonitor

    X, y = iris
    monitor = PipelineMonitor()
    pipe = unified(monitor=monitor).fit(X, y)
    pipe.predict_proba(X.iloc[:7])
    view = describe(pipe)
    assert view.timing_columns == ["last fit", "last predict_proba"]
    for row in view.rows:
        fit, served = row.timings["last fit"], row.timings["last predict_proba"]
        assert fit.status == served.status == "success" and fit.duration > 0
    assert view.rows[0].timings["last predict_proba"].rows_in == 7
    fit_runs = monitor.history("feature_pipeline") + monitor.history("training_pipeline")
    assert view.run_totals["last fit"] == pytest.approx(sum(r.duration for r in fit_runs))
    text = rich_text(pipe)
    assert re.search(r"model\s+LogisticRegression\s+yes\s+4\s+—\s+[\d.]+ [µm]?s\s+[\d.]+ [µm]?s",
                     text), text
    assert "<th>last fit</th><th>last predict_proba</th>" in state_table(pipe._repr_html_())


def test_epoch_training_shows_the_model_time_over_all_its_batches(iris):
    from sklearn.linear_model import SGDClassifier

    from ml_toolbox import PipelineMonitor

    X, y = iris
    monitor = PipelineMonitor()
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=SGDClassifier(loss="log_loss", random_state=0), epochs=3,
                             batch_size=50, random_state=0, monitor=monitor).fit(X, y)
    batches = monitor.history("training_pipeline", mode="partial_fit")
    assert len(batches) == 9  # 3 epochs of 150 rows in batches of 50
    model = describe(pipe).rows[-1].timings["last fit"]
    assert model.batches == 9
    assert model.duration == pytest.approx(sum(r.stages[0].duration for r in batches))
    assert re.search(r"model\s+SGDClassifier\s+yes\s+4\s+—\s+[\d.]+ [µm]?s \(9 batches\)",
                     rich_text(pipe)), rich_text(pipe)
    pipe.fit(X, y)  # a second fit counts its own batches only
    assert describe(pipe).rows[-1].timings["last fit"].batches == 9
