"""Mean and standard deviation of each metric across the gathered evaluate instances."""
import json, os, statistics

src = os.environ["CLLM4REC_IN_EVALUATE"]
runs = {name: json.load(open(os.path.join(src, name, "metrics.json"))) for name in sorted(os.listdir(src))}
summary = {"runs": len(runs)}
for m in ["recall@20", "recall@40", "ndcg@100"]:
    vals = [r[m] for r in runs.values()]
    summary[m] = round(statistics.mean(vals), 6)
    summary[m + " std"] = round(statistics.stdev(vals), 6) if len(vals) > 1 else 0.0
json.dump(summary, open(os.path.join(os.environ["CLLM4REC_OUT"], "metrics.json"), "w"), indent=2, sort_keys=True)
