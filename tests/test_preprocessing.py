"""AutoPreprocessor on real frames: datetime columns, high-cardinality columns, the fast path.

Real data nobody here wrote: vega_datasets' cars (a 311-value Name column, a Year datetime column)
and seattle_weather (a date column), shipped inside the package (no download).
"""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline

from ml_toolbox import MLToolbox, UnifiedMLPipeline
from ml_toolbox.preprocessing import AutoPreprocessor, DatetimeFeatures

vega = pytest.importorskip("vega_datasets").data


@pytest.fixture(scope="module")
def cars():
    df = vega.cars().dropna(subset=["Miles_per_Gallon"]).reset_index(drop=True)
    return df.drop(columns="Miles_per_Gallon"), df["Miles_per_Gallon"].to_numpy()


@pytest.fixture(scope="module")
def weather():
    df = vega.seattle_weather()
    return df.drop(columns="weather"), df["weather"].to_numpy()


def test_datetime_column_becomes_date_parts_not_categories(weather):
    X, y = weather
    ap = AutoPreprocessor().fit(X, y)
    assert ap.datetime_columns_ == ["date"] and "date" not in ap.categorical_columns_
    names = ap.get_feature_names_out().tolist()
    assert [n for n in names if n.startswith("datetime__")] == [
        "datetime__date_year", "datetime__date_month", "datetime__date_day",
        "datetime__date_dayofweek"]  # dates at midnight: no hour
    parts = DatetimeFeatures().fit_transform(X[["date"]])
    np.testing.assert_array_equal(parts[:, 0], X["date"].dt.year.to_numpy(dtype=float))
    np.testing.assert_array_equal(parts[:, 3], X["date"].dt.day_of_week.to_numpy(dtype=float))
    assert ap.transform(X).shape == (len(X), len(names))


@pytest.mark.parametrize("tz", ["UTC", "US/Pacific", "Asia/Kolkata"])
def test_tz_aware_datetimes_read_in_their_zone_with_hour_and_missing(weather, tz):
    X, y = weather
    when = X["date"].dt.tz_localize(tz) + pd.Timedelta(hours=7, minutes=30)
    when = when.mask(X.index % 10 == 0)  # NaT every tenth row
    X = X.assign(date=when)
    ap = AutoPreprocessor(scale=False).fit(X, y)
    names = ap.get_feature_names_out().tolist()
    assert "datetime__date_hour" in names
    out = ap.transform(X)
    hour = out[:, names.index("datetime__date_hour")]
    seen = when.notna().to_numpy()
    np.testing.assert_array_equal(hour[seen], when.dt.hour.to_numpy(dtype=float)[seen])
    assert (hour[~seen] == np.median(hour[seen])).all()  # NaT imputed with the median hour
    day = out[:, names.index("datetime__date_day")]
    np.testing.assert_array_equal(day[1:10], when.dt.day.to_numpy(dtype=float)[1:10])


def test_naive_datetime_with_nat_does_not_crash_the_imputer():
    X = pd.DataFrame({"t": pd.to_datetime(["2024-01-01 00:00", None, "2024-03-05 13:00"]),
                      "v": [1.0, 2.0, 3.0]})
    out = AutoPreprocessor(scale=False).fit_transform(X)
    assert out.shape == (3, 6) and np.isfinite(out).all()


@pytest.mark.parametrize("how, encoder", [("target", "TargetEncoder"),
                                          ("ordinal", "OrdinalEncoder")])
def test_high_cardinality_name_column_is_encoded_not_one_hot(cars, how, encoder):
    X, y = cars
    assert X["Name"].nunique() > 300
    ap = AutoPreprocessor(high_cardinality=how).fit(X, y)
    assert ap.high_cardinality_columns_ == {"Name": X["Name"].nunique()}
    assert "Name" not in ap.categorical_columns_ and "Origin" in ap.categorical_columns_
    names = ap.get_feature_names_out().tolist()
    assert names.count("high_cardinality__Name") == 1
    assert len(names) < 20  # not hundreds of one-hot columns
    inner = ap.column_transformer_.named_transformers_["high_cardinality"]
    assert type(inner[-1]).__name__ == encoder
    unseen = X.iloc[[0]].assign(Name="a car nobody made")
    assert np.isfinite(ap.transform(unseen)).all()


def test_high_cardinality_drop_warns_naming_the_column(cars):
    X, y = cars
    n = X["Name"].nunique()  # 304 once the rows without a target are gone
    with pytest.warns(UserWarning, match=re.escape(f"column 'Name' has {n} distinct values")):
        ap = AutoPreprocessor(high_cardinality="drop").fit(X, y)
    assert not any("Name" in n for n in ap.get_feature_names_out())


def test_target_encoding_without_y_is_ordinal(cars):
    X, _ = cars
    ap = AutoPreprocessor().fit(X)
    inner = ap.column_transformer_.named_transformers_["high_cardinality"]
    assert type(inner[-1]).__name__ == "OrdinalEncoder"


@pytest.mark.parametrize("kwargs, message", [
    ({"high_cardinality": "hash"}, "high_cardinality must be 'target', 'ordinal' or 'drop'"),
    ({"high_cardinality_threshold": 0}, "high_cardinality_threshold must be a positive int"),
    ({"high_cardinality_threshold": True}, "high_cardinality_threshold must be a positive int"),
])
def test_bad_parameters_are_named(cars, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        AutoPreprocessor(**kwargs).fit(*cars)


@settings(max_examples=25, deadline=None)
@given(n_values=st.integers(1, 12), threshold=st.integers(1, 12))
def test_threshold_is_the_rule(n_values, threshold):
    X = pd.DataFrame({"c": [f"v{i % n_values}" for i in range(40)], "x": np.arange(40.0)})
    ap = AutoPreprocessor(high_cardinality_threshold=threshold, high_cardinality="ordinal").fit(X)
    assert ("c" in ap.high_cardinality_columns_) == (n_values > threshold)


def test_toolbox_pipeline_on_cars_matches_sklearn_and_says_why_it_declines(cars):
    X, y = cars
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = UnifiedMLPipeline(features=[("preprocessing", AutoPreprocessor())],
                                 model=Ridge()).fit(X, y)
        ref = make_pipeline(AutoPreprocessor(), Ridge()).fit(X, y)
    for batch in (X.iloc[[0]], X.iloc[[5]], X.iloc[:30]):
        np.testing.assert_array_equal(ours.predict(batch), ref.predict(batch))
    first = ours.inference_pipeline.fast_plan_.explain()[0]
    assert first.path == "fallback" and "DatetimeFeatures" in first.reason


def test_default_toolbox_pipeline_is_on_kernels_and_identical(weather):
    X, y = weather
    X = X.drop(columns="date").assign(
        kind=np.where(X["wind"] > 3, "windy", None), calm=X["wind"] < 1)
    ours = UnifiedMLPipeline(MLToolbox()).fit(X, y)
    model = ours.inference_pipeline.stages_[-1].estimator_
    ref = make_pipeline(AutoPreprocessor(), type(model)(**model.get_params())).fit(X, y)
    plan = ours.inference_pipeline.fast_plan_
    assert all(r.path == "kernel" for r in plan.explain("predict_proba")), plan.explain()
    for i in (0, 1, 17, 400):
        row = X.iloc[[i]]
        for method in ("predict", "predict_proba"):
            got, want = getattr(ours, method)(row), getattr(ref, method)(row)
            assert got.dtype == want.dtype and np.array_equal(got, want)
    assert plan.path_counts("predict_proba")["fast"] == 4
    assert isinstance(model, LogisticRegression)


def test_target_encoded_name_column_stays_on_kernels_and_identical(cars):
    X, y = cars
    X = X.drop(columns="Year")
    ours = UnifiedMLPipeline(features=[("preprocessing", AutoPreprocessor())],
                             model=Ridge()).fit(X, y)
    ref = make_pipeline(AutoPreprocessor(), Ridge()).fit(X, y)
    plan = ours.inference_pipeline.fast_plan_
    assert all(r.path == "kernel" for r in plan.explain()), plan.explain()
    unseen = X.iloc[[3]].assign(Name="a car nobody made")
    for batch in [X.iloc[[i]] for i in range(0, 390, 37)] + [unseen, X.iloc[:40]]:
        got, want = ours.predict(batch), ref.predict(batch)
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert plan.path_counts()["fallback"] == 0
