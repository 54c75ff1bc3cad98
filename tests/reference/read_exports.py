"""Reads cllm4rec-pipe's exports back with the tools' own libraries, for tests/cli/report.rs.

    python3 read_exports.py mlflow DIR EXPERIMENT   # mlflow.search_runs over the file store DIR
    python3 read_exports.py tensorboard DIR         # TensorBoard's event reader, a run per folder

Prints JSON: for mlflow, a list of runs (run_name, status, params, metrics, tags, artifacts,
and each metric's history as [step, value] pairs); for tensorboard, {run: {tag: [[step,
value], ...]}}. Needs the `mlflow` (with pandas) and `tensorboard` packages from PyPI.
"""

import json
import os
import sys


def mlflow_runs(store, experiment):
    # MLflow 3 keeps the file store in maintenance mode behind this switch.
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = "file:" + os.path.abspath(store)
    mlflow.set_tracking_uri(uri)
    frame = mlflow.search_runs(experiment_names=[experiment])
    client = MlflowClient(tracking_uri=uri)
    out = []
    for _, row in frame.iterrows():
        run_id = row["run_id"]
        cols = lambda prefix: {
            c[len(prefix):]: row[c]
            for c in frame.columns
            if c.startswith(prefix) and row[c] is not None and row[c] == row[c]
        }
        metrics = {k: float(v) for k, v in cols("metrics.").items()}
        history = {
            k: [[m.step, m.value] for m in sorted(client.get_metric_history(run_id, k), key=lambda m: m.step)]
            for k in metrics
        }
        out.append(
            {
                "run_id": run_id,
                "run_name": row["tags.mlflow.runName"],
                "status": row["status"],
                "params": {k: str(v) for k, v in cols("params.").items()},
                "metrics": metrics,
                "tags": {k: str(v) for k, v in cols("tags.").items()},
                "artifacts": sorted(a.path for a in client.list_artifacts(run_id)),
                "history": history,
            }
        )
    return out


def tensorboard_runs(root):
    from tensorboard.backend.event_processing import event_accumulator

    out = {}
    for run in sorted(os.listdir(root)):
        acc = event_accumulator.EventAccumulator(os.path.join(root, run))
        acc.Reload()
        out[run] = {
            tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]
        }
    return out


if __name__ == "__main__":
    mode, where = sys.argv[1], sys.argv[2]
    if mode == "mlflow":
        result = mlflow_runs(where, sys.argv[3])
    elif mode == "tensorboard":
        result = tensorboard_runs(where)
    else:
        sys.exit(f"unknown mode {mode!r}")
    json.dump(result, sys.stdout)
