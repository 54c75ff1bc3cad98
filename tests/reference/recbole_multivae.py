"""Multi-VAE as RecBole implements it (Zhao et al., CIKM 2021; PyPI recbole==1.2.1), trained
and evaluated on the exact split of an `ingest` stage: the reference our `multivae` stage is
compared with on Amazon Beauty (README, "multivae, lightgcn"). RecBole's code is independent of
ours; it is given the same split, the paper's sizes and training settings, and its own full-
ranking evaluator computes Recall@20, Recall@40 and NDCG@100 on the test split at the epoch with
the best validation NDCG@100.

    python3 -m venv --system-site-packages /var/tmp/recbole-venv
    /var/tmp/recbole-venv/bin/pip install recbole==1.2.1
    /var/tmp/recbole-venv/bin/python tests/reference/recbole_multivae.py INGEST_DIR OUT.json \
        --epochs 50 --eval-step 5 --stopping-step 4

INGEST_DIR is the output folder of the ingest stage (`cllm4rec-pipe show PIPELINE ingest`).
results/multivae-beauty-recbole.json is that command's output for the ingest of
pipelines/beauty-baselines.yaml (the validation NDCG@100 peaked at epoch 30).

Where RecBole's Multi-VAE differs from the paper's code (and from our stage), as published:
- a training batch is 500 training interactions, not 500 users: a user is in an epoch once per
  training item (292 updates an epoch on Beauty, against 45), and beta, annealed per update,
  rises 6.5 times as fast per epoch;
- z = mu + eps * exp(logvar / 2) with eps ~ N(0, 0.01^2), not N(0, 1);
- its evaluator also excludes validation items when ranking for the test split; `our_protocol`
  below recomputes the test metrics with our definitions from the same model's scores.
"""
import argparse
import csv
import json
import os
import sys
import tempfile
import time


def write_atomic(src, dst):
    """An ingest split (user,item,rating,timestamp) as a RecBole atomic .inter file."""
    n = 0
    with open(src, newline="") as f, open(dst, "w") as out:
        out.write("user_id:token\titem_id:token\n")
        for row in csv.DictReader(f):
            out.write(f"u{row['user']}\ti{row['item']}\n")
            n += 1
    return n


def read_pairs(path):
    with open(path, newline="") as f:
        return [(int(r["user"]), int(r["item"])) for r in csv.DictReader(f)]


def our_protocol(model, dataset, ingest_dir, device):
    """Test metrics as our `evaluate` stage defines them, from the RecBole model's scores (the
    decoder at the posterior mean of the user's training items): only training items are
    excluded from the ranking (RecBole's evaluator also excludes validation items), Recall@K =
    hits / min(K, held-out), NDCG@K with IDCG over min(K, held-out) hits, averaged over the users
    with test items."""
    import numpy as np
    import torch
    from recbole.data.interaction import Interaction

    train, test = {}, {}
    for u, i in read_pairs(os.path.join(ingest_dir, "train.csv")):
        train.setdefault(u, set()).add(i)
    for u, i in read_pairs(os.path.join(ingest_dir, "test.csv")):
        test.setdefault(u, set()).add(i)
    item_tokens = dataset.field2id_token["item_id"]
    # column c of RecBole's scores is our item ours[c] (-1: RecBole's padding column)
    ours = np.array([int(t[1:]) if t.startswith("i") else -1 for t in item_tokens])
    users = sorted(test)
    sums = {"recall@20": 0.0, "recall@40": 0.0, "ndcg@100": 0.0}
    model.eval()
    with torch.no_grad():
        for start in range(0, len(users), 1024):
            batch = users[start : start + 1024]
            ids = torch.tensor([dataset.token2id("user_id", f"u{u}") for u in batch])
            scores = model.full_sort_predict(Interaction({"user_id": ids}).to(device))
            scores = scores.view(len(batch), -1).cpu().numpy().astype(np.float64)
            for row, u in zip(scores, batch):
                s = np.full(len(ours) - 1, -np.inf)
                s[ours[1:]] = row[1:]
                s[list(train.get(u, ()))] = -np.inf
                # best first; ties to the lower item id, as our top_k
                ranking = np.lexsort((np.arange(len(s)), -s))[:100]
                truth = test[u]
                hit = np.array([i in truth for i in ranking], dtype=np.float64)
                for k in (20, 40):
                    sums[f"recall@{k}"] += hit[:k].sum() / min(k, len(truth))
                disc = 1.0 / np.log2(np.arange(2, 102))
                sums["ndcg@100"] += (hit * disc).sum() / disc[: min(100, len(truth))].sum()
    return {k: v / len(users) for k, v in sums.items()} | {"users": len(users)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ingest_dir")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--eval-step", type=int, default=5)
    ap.add_argument("--stopping-step", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.ingest_dir = os.path.abspath(args.ingest_dir)
    args.out = os.path.abspath(args.out)

    # RecBole 1.2.1 predates numpy 2: give it back the aliases its compatibility code reads.
    import numpy as np

    for name, alias in [("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)]:
        if name not in np.__dict__:
            setattr(np, name, alias)

    # RecBole reloads its own best checkpoint (a full pickle) with torch.load.
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    import warnings

    warnings.filterwarnings("ignore")
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender import MultiVAE
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed

    work = tempfile.mkdtemp(prefix="recbole-")
    os.makedirs(os.path.join(work, "split"))
    os.chdir(work)  # RecBole writes its log/ and log_tensorboard/ into the working folder
    counts = {}
    for part in ["train", "valid", "test"]:
        counts[part] = write_atomic(
            os.path.join(args.ingest_dir, f"{part}.csv"),
            os.path.join(work, "split", f"split.{part}.inter"),
        )
    config = Config(
        model="MultiVAE",
        dataset="split",
        config_dict={
            "data_path": work,
            "checkpoint_dir": os.path.join(work, "saved"),
            "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["user_id", "item_id"]},
            "use_gpu": False,
            "device": "cpu",
            "seed": args.seed,
            "reproducibility": True,
            "show_progress": False,
            # The paper's architecture and training settings (our stage's defaults).
            # RecBole's encoder outputs latent_dimension values, the first half the mean and
            # the second the log-variance: 400 gives the paper's 200-dimensional z.
            "mlp_hidden_size": [600],
            "latent_dimension": 400,
            "dropout_prob": 0.5,
            "anneal_cap": 0.2,
            "total_anneal_steps": 200000,
            "learning_rate": 0.001,
            "train_batch_size": 500,
            "train_neg_sample_args": None,
            "epochs": args.epochs,
            "eval_step": args.eval_step,
            "stopping_step": args.stopping_step,
            "eval_args": {"mode": "full", "order": "RO", "group_by": "user"},
            "metrics": ["Recall", "NDCG"],
            "topk": [20, 40, 100],
            "valid_metric": "NDCG@100",
            "eval_batch_size": 4096,
            "metric_decimal_place": 6,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = MultiVAE(config, train.dataset).to(config["device"])
    trainer = Trainer(config, model)
    start = time.time()
    _, valid_result = trainer.fit(train, valid, saved=True, show_progress=False)
    seconds = time.time() - start
    test_result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    ours = our_protocol(model, dataset, args.ingest_dir, config["device"])
    result = {
        "implementation": "recbole==1.2.1 MultiVAE",
        # the ingest output's content hash when INGEST_DIR is in a cache (objects/xx/HASH/data)
        "ingest_output": os.path.basename(os.path.dirname(args.ingest_dir)),
        "interactions": counts,
        "users": dataset.user_num - 1,
        "items": dataset.item_num - 1,
        "epochs": args.epochs,
        "eval_step": args.eval_step,
        "stopping_step": args.stopping_step,
        # 1-based, as our stage counts: the epoch of the checkpoint evaluated, the last trained
        "best_epoch": torch.load(trainer.saved_model_file, weights_only=False)["epoch"] + 1,
        "epochs_trained": max(trainer.train_loss_dict) + 1,
        "train_seconds": round(seconds, 1),
        "valid": {k: float(v) for k, v in valid_result.items()},
        "test_recbole_protocol": {k: float(v) for k, v in test_result.items()},
        "test": ours,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")
    json.dump({"recbole": result["test_recbole_protocol"], "ours": ours}, sys.stdout, indent=2, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
