"""Epoch training through the pipeline vs a hand-written partial_fit loop doing the same work.

SGDClassifier(loss="log_loss") on 200k x 50 over 10 epochs, batch_size=10_000, shuffled each epoch
with the same random generator, classes= on the first call, and after every epoch the same metrics
(log loss and accuracy on the training part; on the validation part too in the second row).
The target: the pipeline within 1.05x of the hand loop.

Run: ``python -m benchmarks.bench_training`` (or ``python -m benchmarks`` for all).
"""

from __future__ import annotations

import time

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split

N_SAMPLES, N_FEATURES, EPOCHS, BATCH_SIZE, SEED = 200_000, 50, 10, 10_000, 0
REPEATS = 3
TARGET = 1.05


def hand_loop(model, X, y, validation):
    """What a user writes without the toolbox: the same batches and the same metrics."""
    classes = np.unique(y)
    if validation:
        idx = np.arange(len(X))
        tr, va = train_test_split(idx, test_size=validation, random_state=SEED, shuffle=True,
                                  stratify=y)
        X_tr, y_tr, X_va, y_va = X[tr], y[tr], X[va], y[va]
    else:
        X_tr, y_tr, X_va, y_va = X, y, None, None
    clf = clone(model)
    rng = np.random.RandomState(SEED)
    n = len(X_tr)
    history = []
    for _ in range(EPOCHS):
        order = rng.permutation(n)
        for start in range(0, n, BATCH_SIZE):
            b = order[start:start + BATCH_SIZE]
            if start == 0 and not history:
                clf.partial_fit(X_tr[b], y_tr[b], classes=classes)
            else:
                clf.partial_fit(X_tr[b], y_tr[b])
        record = {"train_loss": log_loss(y_tr, clf.predict_proba(X_tr), labels=clf.classes_),
                  "train_score": accuracy_score(y_tr, clf.predict(X_tr))}
        if X_va is not None:
            record["val_loss"] = log_loss(y_va, clf.predict_proba(X_va), labels=clf.classes_)
            record["val_score"] = accuracy_score(y_va, clf.predict(X_va))
        history.append(record)
    return clf, history


def through_pipeline(model, X, y, validation):
    try:
        from ml_toolbox import TrainingPipeline
    except ImportError:  # the core has not landed: drive the epoch loop directly
        TrainingPipeline = None
    if TrainingPipeline is not None:
        pipe = TrainingPipeline(model, epochs=EPOCHS, batch_size=BATCH_SIZE, shuffle=True,
                                random_state=SEED, validation=validation, scoring="accuracy")
        pipe.fit(X, y)
        return pipe.model_, pipe.history_.records
    from types import SimpleNamespace

    from ml_toolbox.lifecycle import fit_epochs

    class Stage:
        def __init__(self, estimator):
            self.estimator = estimator

        def run(self, X, y=None, mode="fit", **params):
            if not hasattr(self, "estimator_"):
                self.estimator_ = clone(self.estimator)
            getattr(self.estimator_, mode)(X, y, **params)
            return self

    tp = SimpleNamespace(name="training_pipeline", epochs=EPOCHS, batch_size=BATCH_SIZE,
                         shuffle=True, random_state=SEED, validation=validation,
                         scoring="accuracy", callbacks=None, verbose=0, monitor=None)
    out = fit_epochs(tp, Stage(model), X, y)
    return out["stage_"].estimator_, out["history_"].records


def _time(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def main(console=None):
    console = console or Console()
    X, y = make_classification(n_samples=N_SAMPLES, n_features=N_FEATURES, n_informative=20,
                               random_state=SEED)
    model = SGDClassifier(loss="log_loss", random_state=SEED)
    table = Table(title=f"Epoch training: SGDClassifier, {N_SAMPLES:,} x {N_FEATURES}, "
                        f"{EPOCHS} epochs, batch_size={BATCH_SIZE:,} (best of {REPEATS})")
    for column in ("case", "hand-written loop (s)", "pipeline (s)", "ratio", f"<= {TARGET}x",
                   "same model"):
        table.add_column(column, justify="right" if column != "case" else "left")
    hand_loop(model, X[:20_000], y[:20_000], None)  # warm-up: imports, caches, allocator
    through_pipeline(model, X[:20_000], y[:20_000], None)
    rows = []
    for label, validation in (("train metrics", None), ("train + validation=0.2", 0.2)):
        hand, pipe = [], []
        for _ in range(REPEATS):  # interleaved, so drift hits both sides alike
            t, (hand_model, hand_hist) = _time(hand_loop, model, X, y, validation)
            hand.append(t)
            t, (pipe_model, pipe_hist) = _time(through_pipeline, model, X, y, validation)
            pipe.append(t)
        same = (np.array_equal(hand_model.coef_, pipe_model.coef_)
                and [r["train_loss"] for r in hand_hist] == [r["train_loss"] for r in pipe_hist])
        ratio = min(pipe) / min(hand)
        rows.append((label, min(hand), min(pipe), ratio, same))
        table.add_row(label, f"{min(hand):.3f}", f"{min(pipe):.3f}", f"{ratio:.3f}",
                      "yes" if ratio <= TARGET else "NO", "yes" if same else "NO")
    console.print(table)
    return rows


if __name__ == "__main__":
    main()
