"""The reference of benches/llama.sh: SmolLM2-135M's shape in transformers' LlamaForCausalLM
(random init, PyTorch CPU, as many threads as cores), the same step as
benches/llama_throughput.rs: forward + backward of the mean squared logits over every
parameter, then an inference forward; batch BATCH x SEQ, STEPS timed steps after a warm-up.
Prints `torch fwd+bwd TOKENS_PER_S` and `torch fwd TOKENS_PER_S` (medians)."""
import os, statistics, time
import torch
from transformers import LlamaConfig, LlamaForCausalLM

batch, seq, steps = (int(os.environ.get(k, d)) for k, d in [("BATCH", 8), ("SEQ", 64), ("STEPS", 3)])
torch.set_num_threads(os.cpu_count())
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                  num_attention_heads=9, num_key_value_heads=3, head_dim=64, rms_norm_eps=1e-5,
                  rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
                  max_position_embeddings=8192, tie_word_embeddings=True)
model = LlamaForCausalLM(cfg)
ids = (torch.arange(batch * seq) * 7919 % 49152).reshape(batch, seq)
train = []
for step in range(steps + 1):
    start = time.perf_counter()
    (model(ids).logits ** 2).mean().backward()
    model.zero_grad()
    train.append(batch * seq / (time.perf_counter() - start))
infer = []
with torch.no_grad():
    for step in range(steps + 1):
        start = time.perf_counter()
        model(ids)
        infer.append(batch * seq / (time.perf_counter() - start))
print(f"torch fwd+bwd {statistics.median(train[1:]):.1f}")
print(f"torch fwd {statistics.median(infer[1:]):.1f}")
