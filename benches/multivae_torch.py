"""Multi-VAE (Liang et al., WWW 2018) in plain PyTorch, the reference of benches/baselines.sh:
the model and training step of our `multivae` stage (stages/multivae.yaml), on the training
split of an `ingest` stage's output, timed per epoch. Not a copy of our code: written from the
paper's definition, as our stage documents it.

- encoder: L2-normalised binary user row -> dropout (keep 1 - p, scale 1 / (1 - p)) ->
  Linear(items, hidden) -> tanh -> Linear(hidden, 2 latent) = (mu, logvar);
  z = mu + eps * exp(logvar / 2), eps ~ N(0, 1);
- decoder: Linear(latent, hidden) -> tanh -> Linear(hidden, items);
- loss: mean over the batch's users of -sum(log_softmax(logits) * x) + beta * KL, x the
  binary row, beta = min(anneal_cap, updates / total_anneal_steps);
- Adam (eps 1e-8), users shuffled each epoch, batches of batch_size users.

The input batch is dense ([batch, items]), as in the paper's code and RecBole; with
`--sparse-input` the first layer multiplies a sparse batch instead (torch.sparse.mm), as ours
does (a user of Beauty has about 7 of its 12,101 items in the training split).

    python benches/multivae_torch.py INGEST_DIR --epochs 6
prints one line per epoch (`epoch N: S s`) and then a JSON line with the per-epoch times.
"""
import argparse
import csv
import json
import os
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ingest_dir")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=600)
    ap.add_argument("--latent", type=int, default=200)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--anneal-cap", type=float, default=0.2)
    ap.add_argument("--total-anneal-steps", type=int, default=200000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sparse-input", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    users, items = set(), set()
    pairs = []
    with open(os.path.join(a.ingest_dir, "train.csv")) as f:
        for r in csv.DictReader(f):
            u, i = int(r["user"]), int(r["item"])
            pairs.append((u, i))
    with open(os.path.join(a.ingest_dir, "stats.json")) as f:
        stats = json.load(f)
    n_users = max(u for u, _ in pairs) + 1
    n_items = stats.get("items") or (max(i for _, i in pairs) + 1)
    rows = torch.tensor([u for u, _ in pairs])
    cols = torch.tensor([i for _, i in pairs])
    x_all = torch.zeros(n_users, n_items)
    x_all[rows, cols] = 1.0
    has = x_all.sum(1) > 0
    train_users = torch.nonzero(has).squeeze(1)

    enc1 = torch.nn.Linear(n_items, a.hidden)
    enc2 = torch.nn.Linear(a.hidden, 2 * a.latent)
    dec1 = torch.nn.Linear(a.latent, a.hidden)
    dec2 = torch.nn.Linear(a.hidden, n_items)
    params = [p for m in (enc1, enc2, dec1, dec2) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=a.lr, eps=1e-8)

    updates = 0
    times = []
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        order = train_users[torch.randperm(len(train_users))]
        for s in range(0, len(order), a.batch_size):
            x = x_all[order[s : s + a.batch_size]]
            h = F.normalize(x, dim=1)
            h = F.dropout(h, p=a.dropout, training=True)
            if a.sparse_input:
                h = torch.sparse.mm(h.to_sparse(), enc1.weight.t()) + enc1.bias
            else:
                h = enc1(h)
            h = torch.tanh(h)
            mu, logvar = enc2(h).chunk(2, dim=1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            logits = dec2(torch.tanh(dec1(z)))
            nll = -(F.log_softmax(logits, dim=1) * x).sum(1).mean()
            kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
            beta = min(a.anneal_cap, updates / a.total_anneal_steps)
            loss = nll + beta * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            updates += 1
        times.append(time.perf_counter() - t0)
        print(f"epoch {epoch}: {times[-1]:.3f} s (loss {loss.item():.3f})", flush=True)
    per_epoch_updates = (len(train_users) + a.batch_size - 1) // a.batch_size
    print(json.dumps({"epoch_s": times, "updates_per_epoch": per_epoch_updates,
                      "users": len(train_users), "items": n_items,
                      "torch": torch.__version__, "threads": a.threads,
                      "sparse_input": a.sparse_input}))


if __name__ == "__main__":
    main()
