"""Implicit feedback from MovieLens ratings and a seeded per-user 80/10/10 holdout.

Reads ratings.csv (userId,movieId,rating,timestamp); keeps ratings >= min_rating; drops users
with fewer than 3 such ratings (each keeps >= 1 train, validation and test item); writes
train.csv, valid.csv, test.csv (user,item with dense ids) and stats.json.
"""
import csv, json, os, random, sys

params = json.load(open(os.environ["CLLM4REC_PARAMS"]))["params"]
out = os.environ["CLLM4REC_OUT"]
rng = random.Random(params["seed"])

by_user = {}
with open(params["ratings"], newline="") as f:
    for line_no, row in enumerate(csv.DictReader(f), start=2):
        try:
            rating = float(row["rating"])
        except (KeyError, ValueError):
            sys.exit(f"{params['ratings']}:{line_no}: bad rating {row.get('rating')!r}")
        if rating >= params["min_rating"]:
            by_user.setdefault(row["userId"], set()).add(row["movieId"])

users = sorted((u for u, items in by_user.items() if len(items) >= 3), key=int)
items = sorted({i for u in users for i in by_user[u]}, key=int)
uid = {u: n for n, u in enumerate(users)}
iid = {i: n for n, i in enumerate(items)}
splits = {"train": [], "valid": [], "test": []}
for u in users:
    its = sorted(by_user[u], key=int)
    rng.shuffle(its)
    n_test = max(1, round(0.1 * len(its)))
    n_valid = max(1, round(0.1 * len(its)))
    parts = {"test": its[:n_test], "valid": its[n_test:n_test + n_valid], "train": its[n_test + n_valid:]}
    for name, part in parts.items():
        splits[name].extend((uid[u], iid[i]) for i in sorted(part, key=int))

for name, rows in splits.items():
    with open(os.path.join(out, f"{name}.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["user", "item"])
        w.writerows(rows)
n = sum(len(r) for r in splits.values())
stats = {"users": len(users), "items": len(items), "interactions": n,
         "density": n / (len(users) * len(items)), **{name: len(r) for name, r in splits.items()}}
json.dump(stats, open(os.path.join(out, "stats.json"), "w"), indent=2, sort_keys=True)
