"""Quickstart: compose, fit, score and predict with ml_toolbox on a dataset that ships with scikit-learn.

Run it with ``make demo`` (or ``python examples/quickstart.py`` once the package is installed).
"""

from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from ml_toolbox import MLToolbox, UnifiedMLPipeline


def main():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)

    # The scikit-learn way: name your stages and your model.
    pipe = UnifiedMLPipeline(
        features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
        model=LogisticRegression(max_iter=1000),
    )
    pipe.fit(X_train, y_train)
    print(f"held-out accuracy: {pipe.score(X_test, y_test):.3f}")

    row = X_test.iloc[[0]]
    label = pipe.predict(row)[0]
    proba = pipe.predict_proba(row)[0, 1]
    print(f"first test row: predicted class {label} (P(class 1) = {proba:.3f}), true class {y_test.iloc[0]}")

    # The seed's way: let the toolbox choose sensible defaults and run a whole training.
    toolbox = MLToolbox()
    pipeline = UnifiedMLPipeline(toolbox)
    result = pipeline.execute(X_train, y_train, mode="train")
    print(f"toolbox defaults: stages {pipeline.feature_pipeline.stage_names_} + "
          f"{type(result['model']).__name__}, training metrics {result['metrics']}")
    predictions = pipeline.execute(X_test, mode="predict")["predictions"]
    print(f"toolbox defaults held-out accuracy: {(predictions == y_test.to_numpy()).mean():.3f}")


if __name__ == "__main__":
    main()
