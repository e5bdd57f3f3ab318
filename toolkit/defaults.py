"""The defaults of the study, each defined once: the CLI options, the library's keyword arguments and the
report all take them from here (the SQL views at the paper's threshold say 0.5 in their own text)."""

from __future__ import annotations

THRESHOLD = 0.5
"""Definition 6: a neuron is active for a language and label when its profile P exceeds this (the paper's)."""

ALPHA = 0.05
"""Benjamini-Hochberg q-value below which a neuron's label sensitivity is significant (definition 10)."""

MIN_EFFECT = 0.01
"""Pooled omega squared a label-sensitive neuron needs besides q < ALPHA: a "small" effect (Cohen 1988; Kirk
1996). Omega squared is about 0 under no effect whatever the data's size, so the floor is above what noise gives
on average; eta squared, its biased cousin, is about (k - 1) / (N - 1) under noise (0.0175 at 400 sentences
and 8 labels), above this floor."""

UNKNOWN_LIMIT = 0.05
"""Largest share of a language's (non-special) tokens that may be the unknown token: extraction refuses more
without --allow-unk, and analyze and the report name a language above it (definition 18)."""

PERMUTATIONS = 1000
BOOTSTRAPS = 1000

CLASSES = ("polyglot", "shared", "monolingual", "inactive")
"""Definition 6's classes, in the order tables and charts show them."""

TESTED_CLASSES = CLASSES[:3]
"""The classes whose counts are tested against the permutation null (inactive is the remainder)."""

FINETUNE_RECORD = "neurons-finetune.json"
"""The record `neurons finetune` saves in every checkpoint: how it was made, and how it scored epoch by epoch (the
report reads it)."""
