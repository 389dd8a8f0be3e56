"""Epoch training through the pipeline vs a hand-written partial_fit loop doing the same work.

SGDClassifier(loss="log_loss") on 200k x 50 over 10 epochs, batch_size=10_000, shuffled each epoch
with the same seeded generator, classes= on the first call, and after every epoch the same metrics
(log loss and accuracy on the training part; on the validation part too in the second row).
Target: the pipeline within 1.05x of the hand loop. The third row attaches a (no-op) plug-in, so
every batch goes through the execution loop's full path (contexts and hooks), as with a monitor.

Run: ``python -m benchmarks training``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split

from benchmarks._timing import interleaved, ratio_table
from ml_toolbox import TrainingPipeline
from ml_toolbox.plugins import PipelinePlugin

N_SAMPLES, N_FEATURES, EPOCHS, BATCH_SIZE, SEED = 200_000, 50, 10, 10_000, 0
REPEAT = 3
TARGET = 1.05


def hand_loop(model, X, y, validation):
    """What a user writes without the toolbox: the same batches and the same metrics."""
    classes = np.unique(y)
    if validation:
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=validation, random_state=SEED,
                                                  stratify=y)
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
                  "train_accuracy": accuracy_score(y_tr, clf.predict(X_tr))}
        if X_va is not None:
            record["validation_loss"] = log_loss(y_va, clf.predict_proba(X_va),
                                                 labels=clf.classes_)
            record["validation_accuracy"] = accuracy_score(y_va, clf.predict(X_va))
        history.append(record)
    return clf, history


def through_pipeline(model, X, y, validation, monitor=None):
    pipe = TrainingPipeline(model, epochs=EPOCHS, batch_size=BATCH_SIZE, shuffle=True,
                            random_state=SEED, validation=validation, scoring="accuracy",
                            monitor=monitor)
    pipe.fit(X, y)
    return pipe.model_, pipe.history_.records


class _Counting(PipelinePlugin):
    def __init__(self):
        self.stage_runs = 0

    def after_stage(self, ctx):
        self.stage_runs += 1


def main():
    X, y = make_classification(n_samples=N_SAMPLES, n_features=N_FEATURES, n_informative=20,
                               random_state=SEED)
    model = SGDClassifier(loss="log_loss", random_state=SEED)
    rows, checks = [], []
    cases = [("train metrics", None, None), ("train + validation=0.2", 0.2, None),
             ("train metrics, plug-in attached", None, _Counting())]
    for label, validation, plugin in cases:
        results = {}

        def hand(validation=validation):
            results["hand"] = hand_loop(model, X, y, validation)

        def ours(validation=validation, plugin=plugin):
            results["ours"] = through_pipeline(model, X, y, validation, plugin)

        times = interleaved({"pipeline": ours, "hand loop": hand}, repeat=REPEAT)
        (m_hand, h_hand), (m_ours, h_ours) = results["hand"], results["ours"]
        same = (np.array_equal(m_hand.coef_, m_ours.coef_)
                and [r["train_loss"] for r in h_hand] == [r["train_loss"] for r in h_ours])
        ratio = times["pipeline"] / times["hand loop"]
        verdict = ("ok" if ratio <= TARGET else "SLOWER") + (", same model" if same
                                                             else ", MODEL DIFFERS")
        rows.append((label, (times["pipeline"], times["hand loop"]), verdict))
        checks.append((label, ratio, same))
    ratio_table(f"Epoch training: SGDClassifier, {N_SAMPLES:,} x {N_FEATURES}, {EPOCHS} epochs, "
                f"batch_size={BATCH_SIZE:,} (best of {REPEAT}, interleaved)", rows,
                columns=("pipeline", "hand-written loop"), unit="s", scale=1.0,
                target=f"<= {TARGET}x")
    return checks


if __name__ == "__main__":
    main()
