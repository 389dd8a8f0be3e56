"""Same stages, same numbers: UnifiedMLPipeline against sklearn.pipeline.Pipeline, bit for bit.

Every classification and regression dataset that ships inside scikit-learn (no download).
"""

import numpy as np
import pytest
from sklearn import datasets
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from ml_toolbox import UnifiedMLPipeline

CLASSIFICATION = ["load_iris", "load_wine", "load_breast_cancer", "load_digits"]
REGRESSION = ["load_diabetes", "load_linnerud"]


def _stages():
    return [("impute", SimpleImputer()), ("scale", StandardScaler()), ("minmax", MinMaxScaler()),
            ("pca", PCA(n_components=2, random_state=0))]


def _compare(X, y, model, methods):
    ours = UnifiedMLPipeline(features=_stages(), model=model).fit(X, y)
    ref = Pipeline([*_stages(), ("model", model)]).fit(X, y)
    for method in methods:
        for data in (X, X[:1]):  # batches and single rows
            a, b = getattr(ours, method)(data), getattr(ref, method)(data)
            assert a.dtype == b.dtype
            assert np.array_equal(a, b), method
    np.testing.assert_array_equal(ours.transform(X), ref[:-1].transform(X))


@pytest.mark.parametrize("loader", CLASSIFICATION)
@pytest.mark.parametrize("as_frame", [False, True])
@pytest.mark.parametrize("model", [LogisticRegression(max_iter=500),
                                   RandomForestClassifier(n_estimators=10, random_state=0)],
                         ids=["logreg", "forest"])
def test_classification_datasets(loader, as_frame, model):
    X, y = getattr(datasets, loader)(return_X_y=True, as_frame=as_frame)
    methods = ["predict", "predict_proba"]
    if hasattr(model, "decision_function"):
        methods.append("decision_function")
    _compare(X, y, model, methods)


@pytest.mark.parametrize("loader", REGRESSION)
@pytest.mark.parametrize("as_frame", [False, True])
@pytest.mark.parametrize("model", [Ridge(), LinearRegression(),
                                   RandomForestRegressor(n_estimators=10, random_state=0)],
                         ids=["ridge", "ols", "forest"])
def test_regression_datasets(loader, as_frame, model):
    X, y = getattr(datasets, loader)(return_X_y=True, as_frame=as_frame)
    _compare(X, y, model, ["predict"])
