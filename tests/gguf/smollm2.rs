//! The real SmolLM2-135M-Instruct Q4_1 GGUF, when present.
