"""Versioned persistence: the seed's usage pattern 2, then versions, gates, promotion and rollback.

Runs in a temporary directory, so it leaves nothing behind:
``python examples/persistence.py``.
"""

import os
import tempfile

from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from ml_toolbox import MLToolbox, UnifiedMLPipeline
from ml_toolbox.persistence import GateError, PipelinePersistence


def main():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    toolbox = MLToolbox()
    pipeline = UnifiedMLPipeline(toolbox)
    result = pipeline.execute(X_train, y_train, mode="train")

    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)

        # --- usage pattern 2, as written in the seed -----------------------------------------
        persistence = PipelinePersistence(storage_dir="production_pipelines")

        # Save
        state_id = persistence.save_pipeline_state('production', pipeline.state)
        model_id = persistence.save_model(result['model'], 'production_model')

        # Load later
        state = persistence.load_pipeline_state('production')
        model = persistence.load_model('production_model')
        print(f"saved state version {state_id} and model version {model_id}; "
              f"reloaded a {type(state['pipeline']).__name__} and a {type(model).__name__}")

        # --- versions, quality gates, promotion, rollback ------------------------------------
        store = PipelinePersistence("models")
        accuracy = float((pipeline.predict(X_test) == y_test.to_numpy()).mean())
        v1 = pipeline.save(store, name="cancer", metrics={"accuracy": accuracy}, message="toolbox defaults")
        store.promote("cancer", v1, "production", gates={"accuracy": 0.9}, reason="first release")

        weaker = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                                   model=LogisticRegression(C=1e-4)).fit(X_train, y_train)
        weak_accuracy = float((weaker.predict(X_test) == y_test.to_numpy()).mean())
        v2 = weaker.save(store, name="cancer", metrics={"accuracy": weak_accuracy}, message="C=1e-4")
        try:
            store.promote("cancer", v2, "production", gates=["accuracy>=current-0.01"])
        except GateError as refused:
            print(f"refused: {refused}")
        print("what changed:", store.diff("cancer", v1, v2)["metrics"])

        store.promote("cancer", v2, "staging")
        print("aliases:", store.aliases("cancer"))
        same = UnifiedMLPipeline.load(store, name="cancer", version="production")
        print(f"production reloaded: held-out accuracy {same.score(X_test, y_test):.3f}")
        os.chdir(os.path.dirname(workdir))


if __name__ == "__main__":
    main()
