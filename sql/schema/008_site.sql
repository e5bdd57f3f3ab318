-- Where a run's activations were taken (README, "extract"): 'residual' (the hidden states) or 'ffn' (the
-- feed-forward activations after the nonlinearity, docs/definitions.md definition 12).
ALTER TABLE runs ADD COLUMN site VARCHAR DEFAULT 'residual';
