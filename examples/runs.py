"""Runs: record every fit, compare them, report on them, and promote the winner.

Run: python examples/runs.py   (writes runs/ and models/ in the current directory)
"""

from rich import print as rprint
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.preprocessing import StandardScaler

from ml_toolbox import PipelinePersistence, UnifiedMLPipeline
from ml_toolbox.runs import RunStore, submit

X, y = load_breast_cancer(return_X_y=True, as_frame=True)
runs = RunStore("runs")

# 1. Record: every fit of a tracked pipeline is a run (parameters, data fingerprint, metrics).
candidates = []
for C in (0.01, 0.1, 1.0, 10.0):
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=LogisticRegression(C=C, max_iter=2000), validation=0.25,
                             random_state=0, name="cancer", tracking=runs)
    candidates.append(pipe.fit(X, y))

# 2. Epoch training in the background: a Future with the run id, status and progress.
sgd = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                        model=SGDClassifier(loss="log_loss", random_state=0), epochs=8,
                        validation=0.25, random_state=0, name="cancer-sgd", tracking=runs)
future = submit(sgd, X, y)
print(f"background run {future.run_id[:12]}: {future.status}")
future.result(timeout=300)
print(f"background run {future.run_id[:12]}: {future.status}, progress {future.progress:.0%}")
print("validation loss per epoch:",
      [round(v, 3) for step, v in runs.metric_history(future.run_id, "validation_loss")
       if step is not None])

# 3. Compare: the leaderboard, and the best run against the worst, differences highlighted.
board = runs.leaderboard("validation_score", name="cancer")
rprint(runs.compare(board[0].id, board[-1].id))

# 4. Report: P50 / P95 / P99 per stage, success rate, throughput, trend.
rprint(runs.report("cancer", days=7))

# 5. Promote the winner through the store's gates; the lineage goes both ways.
models = PipelinePersistence("models")
done = runs.promote(candidates, models, "cancer", metric="validation_score",
                    gates={"validation_score": 0.9})
print(f"promoted run {done.run_id[:12]} as cancer v{done.version} -> production; manifest run_id:",
      models.manifest("cancer", "production")["run_id"][:12])
runs.note(done.run_id, "promoted to production by examples/runs.py")

# 6. Archive what is done (still queryable), and look from the shell:
#    ml-toolbox runs --runs runs list / show ID / active / report cancer --days 7
print("archived:", len(runs.archive(older_than=0, status="success")), "runs;",
      "still queryable:", runs.get(done.run_id).archived)
