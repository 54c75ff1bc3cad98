"""Most-popular baseline: every user gets the items ranked by training popularity.

Writes scores.csv (item,count), ties broken by item id, so the ranking is deterministic.
"""
import collections, csv, os

src = os.environ["CLLM4REC_IN_INGEST"]
counts = collections.Counter()
with open(os.path.join(src, "train.csv"), newline="") as f:
    for row in csv.DictReader(f):
        counts[int(row["item"])] += 1
with open(os.path.join(os.environ["CLLM4REC_OUT"], "scores.csv"), "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["item", "count"])
    for item, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        w.writerow([item, c])
