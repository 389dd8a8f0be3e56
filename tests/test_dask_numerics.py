"""What makes a stage fitted on a Dask worker differ in the last bits from a serial fit (docs/orchestration.md).

Measured, not assumed: a worker process runs BLAS with its own number of threads (Dask starts
workers with one), and receives arrays as views into the bytes of a message, so their data can start
anywhere -- even off an 8-byte boundary. Re-creating both conditions in this process reproduces the
worker's results bit for bit; each condition alone changes some estimators' results.
"""

import threading

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info, threadpool_limits

from ml_toolbox import FeaturePipeline, PipelineStage


def where(estimator, X):
    """Remember where X's data starts (mod 64), the BLAS threads and the thread it was fitted in."""
    estimator.offset_ = X.ctypes.data % 64
    estimator.blas_threads_ = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    estimator.thread_ = threading.current_thread().name


class WherePCA(PCA):
    def fit(self, X, y=None):
        where(self, X)
        return super().fit(X, y)

    def fit_transform(self, X, y=None):
        where(self, X)
        return super().fit_transform(X, y)


class WhereScaler(StandardScaler):
    def fit(self, X, y=None, sample_weight=None):
        where(self, X)
        return super().fit(X, y, sample_weight)


class Proba(BaseEstimator, TransformerMixin):
    """A logistic regression as a feature: its predicted probabilities."""

    def fit(self, X, y=None):
        where(self, X)
        self.model_ = LogisticRegression(max_iter=500).fit(X, y)
        return self

    def transform(self, X):
        return self.model_.predict_proba(X)

    def result(self):
        return self.model_.coef_


WherePCA.result = lambda self: self.components_
WhereScaler.result = lambda self: self.scale_


def at_offset(X, offset):
    """A copy of X whose data starts ``offset`` bytes past a 64-byte boundary."""
    buffer = np.empty(X.nbytes + 128, dtype=np.uint8)
    start = (-buffer.ctypes.data) % 64 + offset
    out = np.frombuffer(buffer[start:start + X.nbytes].data, dtype=X.dtype).reshape(X.shape)
    out[...] = X
    return out


STAGES = [PipelineStage(WherePCA(10, svd_solver="full"), "pca", depends_on=[]),
          PipelineStage(Proba(), "proba", depends_on=[]),
          PipelineStage(WhereScaler(), "scale", depends_on=[])]


def data():
    rng = np.random.RandomState(0)
    X = rng.rand(20_000, 30)
    return X, (X[:, :3].sum(axis=1) > 1.5).astype(int)


@pytest.mark.slow
def test_a_dask_worker_process_is_reproduced_by_its_blas_threads_and_alignment():
    distributed = pytest.importorskip("distributed")
    X, y = data()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        with parallel_config(backend="dask"):
            remote = FeaturePipeline([clone(s) for s in STAGES], n_jobs=2).fit(X, y)
    for name in ("pca", "proba", "scale"):
        there = remote[name].estimator_
        assert "Dask" in there.thread_
        with threadpool_limits(there.blas_threads_, user_api="blas"):  # the worker's conditions
            here = clone(there).fit(at_offset(X, there.offset_), y)
        np.testing.assert_array_equal(here.result(), there.result())  # bit for bit: nothing else


def test_alignment_alone_can_change_the_last_bits():
    """Off an 8-byte boundary, a logistic regression's fit rounds otherwise, even with one BLAS
    thread; 8-byte-aligned copies give the same bits wherever they start."""
    X, y = data()
    with threadpool_limits(1, user_api="blas"):
        aligned = LogisticRegression(max_iter=500).fit(at_offset(X, 0), y).coef_
        for offset in (8, 16, 40):
            np.testing.assert_array_equal(
                LogisticRegression(max_iter=500).fit(at_offset(X, offset), y).coef_, aligned)
        moved = LogisticRegression(max_iter=500).fit(at_offset(X, 4), y).coef_
    np.testing.assert_allclose(aligned, moved, rtol=1e-9)
    if np.array_equal(aligned, moved):
        pytest.skip("this CPU's numpy rounds misaligned data the same way")


def test_blas_threads_alone_can_change_the_last_bits():
    """With aligned data, the number of BLAS threads changes a full-SVD PCA (when BLAS has several)."""
    X, _ = data()
    if max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas") < 2:
        pytest.skip("BLAS runs one thread here: nothing to compare with")
    with threadpool_limits(1, user_api="blas"):
        one = PCA(10, svd_solver="full").fit(X).components_
    many = PCA(10, svd_solver="full").fit(X).components_
    np.testing.assert_allclose(one, many, atol=1e-9)
    if np.array_equal(one, many):
        pytest.skip("this BLAS sums in the same order with one thread as with several")
