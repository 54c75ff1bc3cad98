"""Independent reference for the Rust `popular` and `evaluate` stages (a test compares them).

Most-popular: rank items by training popularity (ties: in the order of SplitMix64 of the item
id, written here from its published constants). For each user with
test items: drop the user's training items, take the top K. After a cold-items split (stats.json
says so), only the items of test.csv are ranked. Recall@K = hits / min(K, #test
items); NDCG@K with IDCG over min(K, #test items) (the Multi-VAE definitions). Reads the
`ingest` output in CLLM4REC_IN_INGEST; writes metrics.json (full precision) into CLLM4REC_OUT.
"""
import collections, csv, json, math, os

src, out = os.environ["CLLM4REC_IN_INGEST"], os.environ["CLLM4REC_OUT"]

def pairs(name):
    d = collections.defaultdict(set)
    with open(os.path.join(src, name), newline="") as f:
        for row in csv.DictReader(f):
            d[int(row["user"])].add(int(row["item"]))
    return d

train, test = pairs("train.csv"), pairs("test.csv")
counts = collections.Counter(i for items in train.values() for i in items)
stats = json.load(open(os.path.join(src, "stats.json")))
n_items = stats["items"]
M = (1 << 64) - 1

def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)

ranking = sorted(range(n_items), key=lambda i: (-counts[i], splitmix64(i)))
if stats.get("cold") == "items":
    in_test = set().union(*test.values())
    ranking = [i for i in ranking if i in in_test]

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
    rows.append((at_k(top, test[u], 20)[0], at_k(top, test[u], 40)[0], at_k(top, test[u], 100)[1]))
mean = lambda j: sum(r[j] for r in rows) / len(rows)
metrics = {"users": len(rows), "ref_recall@20": mean(0), "ref_recall@40": mean(1), "ref_ndcg@100": mean(2)}
json.dump(metrics, open(os.path.join(out, "metrics.json"), "w"), indent=2, sort_keys=True)
