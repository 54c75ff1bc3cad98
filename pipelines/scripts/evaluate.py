"""Recall@20, Recall@40 and NDCG@100 of a global ranking on held-out test items.

For each user with test items: rank all items by score, drop the user's training items, take
the top K. Recall@K = hits / min(K, #test items); NDCG@K uses IDCG over min(K, #test items)
(the Multi-VAE definitions). Writes metrics.json and per_user.csv.
"""
import collections, csv, json, math, os

split, ranked_in = os.environ["CLLM4REC_IN_INGEST"], os.environ["CLLM4REC_IN_POPULAR"]
out = os.environ["CLLM4REC_OUT"]

def pairs(name):
    d = collections.defaultdict(set)
    with open(os.path.join(split, name), newline="") as f:
        for row in csv.DictReader(f):
            d[int(row["user"])].add(int(row["item"]))
    return d

train, test = pairs("train.csv"), pairs("test.csv")
with open(os.path.join(ranked_in, "scores.csv"), newline="") as f:
    ranking = [int(row["item"]) for row in csv.DictReader(f)]

def at_k(top, truth, k):
    hits = [1 if i in truth else 0 for i in top[:k]]
    n = min(k, len(truth))
    dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
    idcg = sum(1 / math.log2(r + 2) for r in range(n))
    return sum(hits) / n, dcg / idcg

rows = []
for u in sorted(test):
    seen = train.get(u, set())
    top = [i for i in ranking if i not in seen][:100]
    r20, _ = at_k(top, test[u], 20)
    r40, _ = at_k(top, test[u], 40)
    _, n100 = at_k(top, test[u], 100)
    rows.append((u, r20, r40, n100))

with open(os.path.join(out, "per_user.csv"), "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["user", "recall@20", "recall@40", "ndcg@100"])
    w.writerows((u, f"{a:.6f}", f"{b:.6f}", f"{c:.6f}") for u, a, b, c in rows)
mean = lambda j: round(sum(r[j] for r in rows) / len(rows), 6)
metrics = {"model": "most-popular", "users": len(rows), "recall@20": mean(1), "recall@40": mean(2), "ndcg@100": mean(3)}
json.dump(metrics, open(os.path.join(out, "metrics.json"), "w"), indent=2, sort_keys=True)
