"""The study's findings from the stored activations: the paper's analysis, significance, probes and neuron
cards. Reads the SQL views; no model."""
