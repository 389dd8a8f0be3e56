"""The foundation's overhead against scikit-learn's own Pipeline, side by side in one run.

- fit and batch predict of SimpleImputer -> StandardScaler -> LogisticRegression on 100k x 20
  (a DataFrame), no plug-ins: target within 1.05x;
- single-row predict latency (median of thousands of calls): target no slower (1.0x);
- a 10-stage pipeline of identity stages, single-row transform: the loop's own cost per stage
  (scikit-learn's Pipeline adds about 7 us per step over calling the steps by hand; target at
  most that, aim for 2).
"""

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from benchmarks._timing import interleaved, interleaved_median, ratio_table
from ml_toolbox import FeaturePipeline, UnifiedMLPipeline


def data(n_rows=100_000, n_cols=20, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n_rows, n_cols)), columns=[f"f{i}" for i in range(n_cols)])
    X.iloc[rng.integers(0, n_rows, n_rows // 50), 3] = np.nan
    y = (X["f0"].fillna(0) + rng.normal(scale=0.5, size=n_rows) > 0).astype(int)
    return X, y


def three_stages():
    return [("impute", SimpleImputer()), ("scale", StandardScaler())]


def sklearn_pipe():
    return Pipeline([*three_stages(), ("model", LogisticRegression())])


def ours_pipe(**plugins):
    return UnifiedMLPipeline(features=three_stages(), model=LogisticRegression(), **plugins)


def main():
    X, y = data()
    rows = []
    fit = interleaved({"ours": lambda: ours_pipe().fit(X, y),
                       "sklearn": lambda: sklearn_pipe().fit(X, y)}, repeat=3)
    rows.append(("fit 100k x 20", (fit["ours"], fit["sklearn"]), "<= 1.05x"))
    ours, ref = ours_pipe().fit(X, y), sklearn_pipe().fit(X, y)
    assert np.array_equal(ours.predict_proba(X), ref.predict_proba(X))
    batch = interleaved({"ours": lambda: ours.predict(X), "sklearn": lambda: ref.predict(X)},
                        repeat=7)
    rows.append(("batch predict 100k x 20", (batch["ours"], batch["sklearn"]), "<= 1.05x"))
    ratio_table("Three-stage pipeline, no plug-ins (ml_toolbox vs sklearn.pipeline.Pipeline)",
                rows, columns=("ml_toolbox", "sklearn"), target=True)

    row = X.iloc[[0]]
    single = interleaved_median({"ours": lambda: ours.predict(row),
                                 "sklearn": lambda: ref.predict(row)}, calls=3000)
    ratio_table("Single-row predict, median of 3000 calls", [
        ("predict one DataFrame row", (single["ours"], single["sklearn"]), "<= 1.0x")],
        columns=("ml_toolbox", "sklearn"), unit="us", scale=1e6, target=True)

    Xa = X.to_numpy()[:1000]
    one = Xa[:1]
    steps = [(f"id{i}", FunctionTransformer()) for i in range(10)]
    fp = FeaturePipeline(steps).fit(Xa)
    sk = Pipeline([(f"id{i}", FunctionTransformer()) for i in range(10)]).fit(Xa)
    fitted = [s.estimator_ for s in fp.stages_]

    def by_hand():
        Z = one
        for est in fitted:
            Z = est.transform(Z)
        return Z

    lat = interleaved_median({"ours": lambda: fp.transform(one), "sklearn": lambda: sk.transform(one),
                              "hand": by_hand}, calls=3000)
    per_stage_ours = (lat["ours"] - lat["hand"]) / 10
    per_stage_sk = (lat["sklearn"] - lat["hand"]) / 10
    ratio_table("10 identity stages, single-row transform: cost per stage over calling them by hand",
                [("10-stage transform (total)", (lat["ours"], lat["sklearn"]), ""),
                 ("loop cost per stage", (per_stage_ours, per_stage_sk), "<= 7 us, aim 2")],
                columns=("ml_toolbox", "sklearn"), unit="us", scale=1e6, target=True)
    return {"fit": fit, "batch": batch, "single": single, "per_stage": (per_stage_ours,
                                                                         per_stage_sk)}


if __name__ == "__main__":
    main()
