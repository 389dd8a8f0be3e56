"""Trackers beyond the run store: MLflow and TensorBoard.

Both follow the one tracker protocol (:class:`~ml_toolbox.runs.Tracker`), which the monitor's
sinks share: :class:`MLflowTracker` *is* the monitor's :class:`~ml_toolbox.monitor.MLflowSink`,
grown to whole runs. mlflow and tensorboardX are optional (extras ``mlflow`` and
``tensorboard``) and imported on first use.
"""

from __future__ import annotations

import collections
import os
import re
import threading
import time

from ml_toolbox._docstrings import inherit_docstrings
from ml_toolbox.monitor import MLflowSink
from ml_toolbox.runs._tracker import Tracker

__all__ = ["MLflowTracker", "TensorBoardTracker"]

_KEY_RE = re.compile(r"[^\w\-. /]")
_MLFLOW_STATUS = {"success": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}


def _key(*parts):
    return "/".join(_KEY_RE.sub("_", str(p)) for p in parts)


def _numbers(metrics):
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            continue
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


@inherit_docstrings
class MLflowTracker(MLflowSink, Tracker):
    """Record each run as an MLflow run.

    Parameters once, metrics per epoch, stage durations, tags, the status, and the model version
    saved from it. One MLflow run per ml_toolbox run, in experiment ``experiment_name`` (created if missing),
    tagged ``ml_toolbox.run_id``. Epoch metrics are logged with ``step=epoch``; final metrics at
    the end; stage durations as ``<pipeline>/<mode>/<stage>/duration_s``. Used as a plain monitor
    sink (``PipelineMonitor(sinks=[MLflowTracker(...)])``) it behaves as
    :class:`~ml_toolbox.monitor.MLflowSink`.

    Parameters
    ----------
    tracking_uri : str, optional
        E.g. ``"sqlite:///mlflow.db"``; default: MLflow's own setting.
    experiment_name : str, default="ml_toolbox"
        The MLflow experiment of the runs (created if missing).
    run_id : str, optional
        As a plain monitor sink only: log into this existing MLflow run.
    run_name : str, default="pipeline-monitor"
        As a plain monitor sink only: the name of the MLflow run the sink creates.
    modes : iterable of str, optional
        As a plain monitor sink only: forward only executions of these modes.
    artifact_location : str, optional
        Artifact location of an experiment the tracker creates.

    Examples
    --------
    >>> import os, tempfile
    >>> from ml_toolbox.runs import MLflowTracker, RunStore
    >>> where = tempfile.mkdtemp()
    >>> uri = "sqlite:///" + os.path.join(where, "mlflow.db")
    >>> tracking = [RunStore(where), MLflowTracker(uri, experiment_name="churn")]
    >>> tracking[1].experiment_name
    'churn'
    """

    def __init__(self, tracking_uri=None, experiment_name="ml_toolbox", run_id=None,
                 run_name="pipeline-monitor", *, modes=None, artifact_location=None):
        super().__init__(tracking_uri, experiment_name, run_id, run_name, modes=modes,
                         artifact_location=artifact_location)

    def _init_state(self):
        super()._init_state()
        self._runs = {}  # ml_toolbox run id -> MLflow run id
        self._run_steps = collections.Counter()

    def _connect(self):
        mlflow = self._mlflow()
        if self._client is None:
            self._client = mlflow.tracking.MlflowClient(self.tracking_uri)
        return self._client

    def _experiment_id(self, client):
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        return client.create_experiment(self.experiment_name,
                                        artifact_location=self.artifact_location)

    def mlflow_run_id(self, run_id):
        """Return the MLflow run id of an ml_toolbox run this tracker recorded (in this process).

        Parameters
        ----------
        run_id : str
            The ml_toolbox run id.

        Returns
        -------
        str or None
            The MLflow run id, or None for a run this tracker did not record.
        """
        return self._runs.get(run_id)

    def start_run(self, run):
        from mlflow.entities import Param, RunTag

        with self._lock:
            client = self._connect()
            tags = {"ml_toolbox.run_id": run.id, "ml_toolbox.kind": str(run.kind),
                    "ml_toolbox.pipeline": str(run.name),
                    **{str(k): str(v) for k, v in run.tags.items()}}
            created = client.create_run(self._experiment_id(client),
                                        run_name=f"{run.name}-{run.kind}-{run.id[:8]}", tags=tags)
            mlflow_id = created.info.run_id
            self._runs[run.id] = mlflow_id
            params = [Param(_key(k)[:250], str(v)[:500]) for k, v in sorted(run.params.items())]
            data = run.data or {}
            if data.get("shape") is not None:
                params.append(Param("data.shape", str(data["shape"])))
            for start in range(0, len(params), 100):  # MLflow takes 100 parameters a batch
                client.log_batch(mlflow_id, params=params[start:start + 100])
            env = [RunTag(f"env.{k}", str(v)) for k, v in (run.environment or {}).items()]
            if env:
                client.log_batch(mlflow_id, tags=env)

    def log_metrics(self, run, metrics, step=None):
        from mlflow.entities import Metric

        mlflow_id = self._runs.get(run.id)
        if mlflow_id is None:
            return
        stamp = int(time.time() * 1000)
        if step is not None:
            self._run_steps[run.id] = max(self._run_steps[run.id], int(step))
        batch = [Metric(_key(k), v, stamp, 0 if step is None else int(step))
                 for k, v in _numbers(metrics).items()]
        with self._lock:
            for start in range(0, len(batch), 1000):
                self._client.log_batch(mlflow_id, metrics=batch[start:start + 1000])

    def emit(self, metrics, run=None):
        """Called with one finished pipeline execution.

        Parameters
        ----------
        metrics : ~ml_toolbox.monitor.PipelineMetrics
            The execution, with its stage records.
        run : ~ml_toolbox.runs.ActiveRun or None, default=None
            The run it belongs to; None when the tracker is used as a monitor sink (the execution is not
            part of a tracked run).
        """
        if run is None:  # a plain monitor sink
            super().emit(metrics)
            return
        from mlflow.entities import Metric

        mlflow_id = self._runs.get(run.id)
        if mlflow_id is None:
            return
        prefix = (metrics.pipeline_name, metrics.mode)
        with self._lock:
            step = self._run_steps[(run.id, prefix)]
            self._run_steps[(run.id, prefix)] += 1
            stamp = int(metrics.start_time * 1000)
            batch = [Metric(_key(*prefix, s.stage_name, "duration_s"), float(s.duration), stamp,
                            step) for s in metrics.stages if s.duration is not None]
            if batch:
                self._client.log_batch(mlflow_id, metrics=batch)

    def end_run(self, run):
        from mlflow.entities import Metric, RunTag

        mlflow_id = self._runs.get(run.id)
        if mlflow_id is None:
            return
        stamp = int((run.end_time or time.time()) * 1000)
        last = self._run_steps.pop(run.id, 0)  # final values: at the last epoch's step
        for key in [k for k in self._run_steps if isinstance(k, tuple) and k[0] == run.id]:
            del self._run_steps[key]
        batch = [Metric(_key(k), v, stamp, last) for k, v in _numbers(run.metrics).items()]
        tags = [RunTag("ml_toolbox.status", run.status)]
        if (run.data or {}).get("hash"):  # known once the run ends (hashed alongside the fit)
            tags.append(RunTag("ml_toolbox.data_hash", str(run.data["hash"])))
        if run.error:
            tags.append(RunTag("ml_toolbox.error", run.error[:5000]))
        if run.error_stage:
            tags.append(RunTag("ml_toolbox.error_stage", run.error_stage))
        if run.cpu_time is not None:
            batch.append(Metric("run/cpu_time_s", float(run.cpu_time), stamp, last))
        if run.peak_memory is not None:
            batch.append(Metric("run/peak_memory_bytes", float(run.peak_memory), stamp, last))
        with self._lock:
            self._client.log_batch(mlflow_id, metrics=batch, tags=tags)
            self._client.set_terminated(mlflow_id, _MLFLOW_STATUS.get(run.status, "FINISHED"))

    def link_version(self, run, version):
        mlflow_id = self._runs.get(run.id)
        if mlflow_id is None:
            return
        with self._lock:
            client = self._connect()
            client.set_tag(mlflow_id, "ml_toolbox.model_version",
                           f"{version['name']} v{version['version']} ({version['store']})")

    def __repr__(self):
        return (f"MLflowTracker(tracking_uri={self.tracking_uri!r}, "
                f"experiment_name={self.experiment_name!r})")


@inherit_docstrings
class TensorBoardTracker(Tracker):
    """Write each run's scalars (per epoch, per step, stage durations) as TensorBoard event files.

    One directory per run, ``<logdir>/<pipeline>-<run id prefix>``, written by tensorboardX (the
    ``tensorboard`` extra); open it with ``tensorboard --logdir <logdir>``.

    Parameters
    ----------
    logdir : str or path-like
        The directory of the event files: one sub-directory per run (see :meth:`run_dir`).
    flush_secs : float, default=10
        How often, in seconds, the writers flush their events to disk.

    Examples
    --------
    >>> import tempfile
    >>> from ml_toolbox.runs import TensorBoardTracker
    >>> tracker = TensorBoardTracker(tempfile.mkdtemp(), flush_secs=5)
    >>> tracker.flush_secs
    5
    """

    def __init__(self, logdir, *, flush_secs=10):
        self.logdir = logdir
        self.flush_secs = flush_secs
        self._init_state()

    def _init_state(self):
        self._lock = threading.Lock()
        self._writers = {}
        self._steps = collections.Counter()

    def __getstate__(self):
        return {"logdir": self.logdir, "flush_secs": self.flush_secs}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_state()

    @staticmethod
    def _writer_class():
        try:
            from tensorboardX import SummaryWriter
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("TensorBoardTracker needs tensorboardX, which is not installed. "
                              "Install the 'tensorboard' extra: "
                              "pip install 'ml_toolbox[tensorboard]'") from exc
        return SummaryWriter

    def run_dir(self, run):
        """Return the directory of one run's event files.

        Parameters
        ----------
        run : ~ml_toolbox.runs.ActiveRun
            The run.

        Returns
        -------
        str
            ``<logdir>/<run name>-<first 12 characters of the run id>``.
        """
        safe = _KEY_RE.sub("_", str(run.name)).replace("/", "_")
        return os.path.join(os.fspath(self.logdir), f"{safe}-{run.id[:12]}")

    def start_run(self, run):
        writer = self._writer_class()(self.run_dir(run), flush_secs=self.flush_secs)
        with self._lock:
            self._writers[run.id] = writer
        params = "\n".join(f"{k}: {v}" for k, v in sorted(run.params.items()))
        writer.add_text("params", params or "-", 0)

    def log_metrics(self, run, metrics, step=None):
        writer = self._writers.get(run.id)
        if writer is None or step is None:
            return  # final values are written at the end, at the last step
        for key, value in _numbers(metrics).items():
            writer.add_scalar(key, value, int(step))
        self._steps[run.id] = max(self._steps[run.id], int(step))

    def emit(self, metrics, run=None):
        if run is None:
            return
        writer = self._writers.get(run.id)
        if writer is None:
            return
        key = (run.id, metrics.pipeline_name, metrics.mode)
        step = self._steps[key]
        self._steps[key] += 1
        for s in metrics.stages:
            if s.duration is not None:
                writer.add_scalar(_key(metrics.pipeline_name, metrics.mode, s.stage_name,
                                       "duration_s"), float(s.duration), step)

    def end_run(self, run):
        with self._lock:
            writer = self._writers.pop(run.id, None)
        if writer is None:
            return
        try:
            step = self._steps.pop(run.id, 0)
            for key, value in _numbers(run.metrics).items():
                writer.add_scalar(f"final/{key}", value, step)
            writer.add_text("status", run.status if not run.error
                            else f"{run.status}: {run.error}", step)
        finally:
            writer.close()

    def close(self):
        """Flush and close the event writers of every run."""
        with self._lock:
            writers, self._writers = list(self._writers.values()), {}
        for writer in writers:
            writer.close()

    def __repr__(self):
        return f"TensorBoardTracker({os.fspath(self.logdir)!r})"
