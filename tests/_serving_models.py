"""Models for the serving tests, importable by the server processes the tests start (pickled by
reference: the server gets this directory on its PYTHONPATH)."""

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class Raising(ClassifierMixin, BaseEstimator):
    """A challenger that raises on every request."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        raise RuntimeError("this challenger is broken")

    predict_proba = predict


class Slow(ClassifierMixin, BaseEstimator):
    """Answers class 1 after ``delay`` seconds (to keep a request in flight)."""

    def __init__(self, delay=1.0):
        self.delay = delay

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        time.sleep(self.delay)
        return np.ones(len(X), dtype=int)


class Timed(ClassifierMixin, BaseEstimator):
    """Answers class 1 after ``Timed.delay`` seconds and notes the name of the thread that ran it in ``Timed.threads``
    (class attributes: a test changes them while the server holds the unpickled copy)."""

    delay = 0.0
    threads: list = []

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        import threading

        Timed.threads.append(threading.current_thread().name)
        if Timed.delay:
            time.sleep(Timed.delay)
        return np.ones(len(X), dtype=int)
