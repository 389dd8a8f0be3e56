"""Epoch training with the toolbox: the training-lifecycle pattern, end to end.

What the run does, as in the seed documents' pipelines (run and epoch wrappers, per-epoch and
per-run metrics, tracked and untracked custom metrics, early stopping, checkpoints):

- an epoch loop over mini-batches of ``partial_fit`` (``TrainingPipeline(epochs=..., batch_size=...)``);
- per-epoch metrics: train/validation loss and accuracy, computed for you, plus a custom tracked
  metric (the weight norm) and an untracked one (the number of updates, seen by callbacks only);
- per-run metrics: the final and best values, and test-set figures recorded at the end of the run;
- early stopping on the validation loss, restoring the best epoch's model;
- a checkpoint of every improving epoch into the versioned model store.

Run it: ``python examples/training_lifecycle.py`` (add ``--plot curve.png`` to draw the learning
curves).
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import numpy as np
from rich.console import Console
from sklearn.datasets import make_classification
from sklearn.neural_network import MLPClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split

from ml_toolbox import (Callback, EarlyStopping, Metric, ModelCheckpoint, PipelinePersistence,
                        ProgressBar, TrainingPipeline)


class WeightWatcher(Callback):
    """Custom epoch metrics: one tracked (kept in the history), one untracked (callbacks only)."""

    def on_epoch_end(self, epoch, metrics):
        model = metrics.run.stage.estimator_
        norm = float(np.sqrt(sum((w ** 2).sum() for w in model.coefs_)))
        metrics.track("weight_norm", norm)                 # in the history and the run metrics
        metrics.note("samples_seen", int(model.t_))         # callbacks only: not kept anywhere
        return False


class TestSetReport(Callback):
    """Run metrics: test loss and accuracy of the model the run ends with.

    Listed after the EarlyStopping, so the model it scores is the restored best one.
    """

    def __init__(self, X_test, y_test):
        self.X_test, self.y_test = X_test, y_test

    def on_run_end(self, run):
        if run.status == "failed":
            return
        model = run.stage.estimator_
        run.metrics.track(Metric.TEST_LOSS, log_loss(self.y_test, model.predict_proba(self.X_test)))
        run.metrics.track(Metric.TEST_SCORE, accuracy_score(self.y_test, model.predict(self.X_test)))


def main(store=None, plot=None, console=None, epochs=40):
    """Train, stop early, checkpoint; print what happened and return it as a dict.

    ``store``: a PipelinePersistence, or a directory for one (default: a temporary directory).
    """
    console = console or Console()
    X, y = make_classification(n_samples=4_000, n_features=40, n_informative=10, flip_y=0.1,
                               class_sep=0.8, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0,
                                                        stratify=y)
    if store is None or isinstance(store, str):
        store = PipelinePersistence(store or tempfile.mkdtemp(prefix="ml_toolbox_ckpt_"))

    # A network that fits the noise: the validation loss bottoms out, then climbs (overfitting).
    stop = EarlyStopping(monitor=Metric.VAL_LOSS, patience=6)
    checkpoint = ModelCheckpoint(store, name="mlp_model", save_best_only=True,
                                 monitor=Metric.VAL_LOSS, tags={"example": "training_lifecycle"})
    pipe = TrainingPipeline(
        MLPClassifier(hidden_layer_sizes=(128,), learning_rate_init=0.003, random_state=0),
        epochs=epochs, batch_size=128, validation=0.3, scoring="accuracy", random_state=0,
        callbacks=[WeightWatcher(), stop, checkpoint, TestSetReport(X_test, y_test),
                   ProgressBar(console=console)])
    pipe.fit(X_train, y_train)

    history = pipe.history_
    console.print(history)
    console.print(f"epochs run: {pipe.n_epochs_} of {epochs}; stopped: {history.stop_reason}")
    console.print(f"best epoch: {stop.best_epoch_} (validation_loss={stop.best_:.4f}); "
                  f"model restored to it: {stop.restored_}")
    console.print("run metrics:", {k: round(v, 4) for k, v in sorted(pipe.metrics_.items())})
    versions = store.list_versions("mlp_model")
    console.print(f"checkpoints in the store {store!r}: versions {versions} "
                  f"(epochs {[epoch for epoch, _ in checkpoint.saved_]})")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        figure = history.plot(["train_loss", "validation_loss", "train_accuracy",
                               "validation_accuracy"],
                              title="MLPClassifier: learning curves (early stopping on "
                                    "validation_loss, patience=6)")
        for axis in figure.axes:
            axis.axvline(stop.best_epoch_, color="grey", linestyle="--", linewidth=1)
        figure.savefig(plot, dpi=110)
        console.print(f"learning curves saved to {plot}")
    return {"pipeline": pipe, "history": history, "early_stopping": stop,
            "checkpoint": checkpoint, "store": store, "versions": versions,
            "metrics": dict(pipe.metrics_)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="model store directory (default: a temporary one)")
    parser.add_argument("--plot", help="save the learning curves to this PNG file")
    args = parser.parse_args()
    main(store=args.store, plot=args.plot)
    sys.exit(0)
