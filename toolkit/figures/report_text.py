"""Plain-text summaries printed by the CLI."""

from __future__ import annotations

from toolkit.capture.extract import ExtractSummary


def extraction_summary(s: ExtractSummary) -> str:
    """The one-screen summary at the end of an extraction."""
    resumed = f" (resumed: {s.n_done_before} were already saved)" if s.n_done_before else ""
    langs = ", ".join(f"{k} {v}" for k, v in sorted(s.languages.items()))
    labels = ", ".join(f"{k} {v}" for k, v in sorted(s.labels.items()))
    unknown = ", ".join(f"{k} {v:.1%}" for k, v in sorted(s.unknown.items())) or "n/a (no unknown token)"
    lines = [
        f"run '{s.run}' complete in {s.db}",
        f"  model        {s.model}",
        f"  sentences    {s.n_sentences}{resumed}; {s.n_truncated} truncated at max length",
        f"  languages    {langs}",
        f"  labels       {labels}",
        f"  layers       {', '.join(map(str, s.layers))} x {s.hidden_size} neurons = {s.n_values:,} values",
        f"  unknown tok  {unknown} of tokens",
        f"  predictions  {'stored (classification head)' if s.predictions else 'none'}",
        f"  speed        {s.sentences_per_second:,.1f} sentences/s over {s.seconds:.1f} s",
    ]
    return "\n".join(lines)
