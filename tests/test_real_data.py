"""Data nobody here wrote, through ``MLToolbox()`` defaults: scikit-learn's diabetes,
palmerpenguins, vega_datasets' cars and seattle_weather (all shipped inside their packages)."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

from ml_toolbox import MLToolbox, PipelineMonitor, UnifiedMLPipeline

palmerpenguins = pytest.importorskip("palmerpenguins")
vega = pytest.importorskip("vega_datasets")



def _penguins():
    return palmerpenguins.load_penguins()


def _cars():
    return vega.data.cars()


def _weather():
    return vega.data.seattle_weather()


def _frame(name):
    if name == "diabetes":
        X, y = load_diabetes(return_X_y=True, as_frame=True, scaled=False)
        return X, y
    if name == "penguins species":
        p = _penguins()
        return p.drop(columns="species"), p["species"]
    if name == "penguins body mass":
        p = _penguins().dropna(subset=["body_mass_g"])
        return p.drop(columns="body_mass_g"), p["body_mass_g"]
    if name == "cars mpg":
        c = _cars().dropna(subset=["Miles_per_Gallon"])
        return c.drop(columns="Miles_per_Gallon"), c["Miles_per_Gallon"]
    if name == "cars origin":
        c = _cars()
        return c.drop(columns="Origin"), c["Origin"]
    if name == "weather temp_max":
        w = _weather()
        return w.drop(columns="temp_max"), w["temp_max"]
    if name == "weather kind":
        w = _weather()
        return w.drop(columns="weather"), w["weather"]
    raise KeyError(name)


CASES = [  # (dataset, task, the least held-out score the defaults must reach)
    ("diabetes", "regression", 0.3),
    ("penguins species", "classification", 0.9),
    ("penguins body mass", "regression", 0.7),
    ("cars mpg", "regression", 0.6),
    ("cars origin", "classification", 0.6),
    ("weather temp_max", "regression", 0.8),
    ("weather kind", "classification", 0.5),
]


@pytest.mark.parametrize("name, task, least", CASES)
def test_toolbox_defaults_on_real_frames(name, task, least):
    X, y = _frame(name)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    pipe = UnifiedMLPipeline(MLToolbox(), monitor=PipelineMonitor())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: not what is tested here
        pipe.validate(X_train, y_train, n_rows=60)  # a dry run first, on a sample
        result = pipe.execute(X_train, y_train, mode="train")
    assert result["task"] == task, pipe.task_reason_
    assert pipe.score(X_test, y_test) >= least
    one_row = pipe.predict(X_test.iloc[:1])
    assert one_row.shape == (1,)
    assert pipe.predict(X_test).shape == (len(X_test),)


@pytest.mark.parametrize("name", ["cars mpg", "weather temp_max"])
def test_no_column_is_one_hot_encoded_into_hundreds(name):
    X, y = _frame(name)
    pipe = UnifiedMLPipeline(MLToolbox()).fit(X, y)
    assert pipe.transform(X.iloc[:1]).shape[1] < 60


def test_cars_with_missing_targets_get_a_clear_error():
    c = _cars()
    missing = np.flatnonzero(c["Miles_per_Gallon"].isna())
    with pytest.raises(ValueError, match=re.escape(
            f"y has {len(missing)} missing value(s) out of {len(c)} rows, at row position(s) "
            f"[{', '.join(map(str, missing))}]")):
        UnifiedMLPipeline(MLToolbox()).fit(c.drop(columns="Miles_per_Gallon"),
                                           c["Miles_per_Gallon"])


def test_a_dry_run_on_penguins_sorted_by_species():
    p = _penguins().sort_values("species", kind="stable").reset_index(drop=True)
    X, y = p.drop(columns="species"), p["species"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = UnifiedMLPipeline(MLToolbox()).validate(X, y, n_rows=40)
    assert report.n_rows == 40
