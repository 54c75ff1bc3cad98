"""LightGCN (He et al., SIGIR 2020) in plain PyTorch, the reference of benches/baselines.sh: the
model and training step of our `lightgcn` stage (stages/lightgcn.yaml), on the training split
of an `ingest` stage's output, timed per epoch. Written from the paper's definition, as our
stage documents it, not from our code:

- ego embeddings E of users and items (N(0, init_std)); the symmetric-normalised user-item
  graph A = D^-1/2 [[0, R], [R^T, 0]] D^-1/2 of the training pairs (a sparse tensor);
- final embeddings: the mean of E, AE, ..., A^K E, recomputed over the whole graph each step;
- each epoch visits every training pair once in a shuffled order, with one negative item drawn
  uniformly from the user's non-training items; loss per batch: mean softplus(s_neg - s_pos)
  + l2 * (|e_u|^2 + |e_i|^2 + |e_j|^2) / 2 / batch on the ego embeddings; Adam (eps 1e-8).

    python benches/lightgcn_torch.py INGEST_DIR --epochs 4 --batch-size 8192 --lr 0.005
prints one line per epoch and then a JSON line with the per-epoch times.
"""
import argparse
import csv
import json
import os
import random
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ingest_dir")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--l2", type=float, default=1e-4)
    ap.add_argument("--init-std", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)

    pairs = []
    with open(os.path.join(a.ingest_dir, "train.csv")) as f:
        for r in csv.DictReader(f):
            pairs.append((int(r["user"]), int(r["item"])))
    with open(os.path.join(a.ingest_dir, "stats.json")) as f:
        stats = json.load(f)
    n_users, n_items = stats["users"], stats["items"]
    seen = [set() for _ in range(n_users)]
    for u, i in pairs:
        seen[u].add(i)

    n = n_users + n_items
    u_idx = torch.tensor([u for u, _ in pairs])
    i_idx = torch.tensor([n_users + i for _, i in pairs])
    rows = torch.cat([u_idx, i_idx])
    cols = torch.cat([i_idx, u_idx])
    deg = torch.bincount(rows, minlength=n).float()
    inv = torch.where(deg > 0, deg.rsqrt(), torch.zeros_like(deg))
    vals = inv[rows] * inv[cols]
    graph = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (n, n)).coalesce().to_sparse_csr()

    ego = torch.nn.Parameter(torch.randn(n, a.dim) * a.init_std)
    opt = torch.optim.Adam([ego], lr=a.lr, eps=1e-8)

    def negative(u):
        while True:
            j = rng.randrange(n_items)
            if j not in seen[u]:
                return j

    times = []
    steps = 0
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        rng.shuffle(pairs)
        for s in range(0, len(pairs), a.batch_size):
            batch = pairs[s : s + a.batch_size]
            u = torch.tensor([p[0] for p in batch])
            p = torch.tensor([n_users + p[1] for p in batch])
            j = torch.tensor([n_users + negative(q[0]) for q in batch])
            layer, acc = ego, ego
            for _ in range(a.layers):
                layer = graph @ layer
                acc = acc + layer
            fin = acc / (a.layers + 1)
            eu = fin[u]
            pos = (eu * fin[p]).sum(1)
            neg = (eu * fin[j]).sum(1)
            bpr = F.softplus(neg - pos).mean()
            reg = 0.5 * (ego[u].square().sum() + ego[p].square().sum() + ego[j].square().sum()) / len(batch)
            loss = bpr + a.l2 * reg
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
        times.append(time.perf_counter() - t0)
        print(f"epoch {epoch}: {times[-1]:.3f} s (loss {loss.item():.4f})", flush=True)
    print(json.dumps({"epoch_s": times, "updates_per_epoch": -(-len(pairs) // a.batch_size),
                      "users": n_users, "items": n_items, "pairs": len(pairs),
                      "torch": torch.__version__, "threads": a.threads}))


if __name__ == "__main__":
    main()
