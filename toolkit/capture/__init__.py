"""From a checkpoint and a data file to stored activations: datasets, tokenization, model loading, forward
hooks, extraction, imports of activations made elsewhere, and fine-tuning. Imports torch (with causal/ only)."""
