"""Plain-text summaries printed by the CLI."""

from __future__ import annotations

from toolkit.capture.extract import ExtractSummary


def extraction_summary(s: ExtractSummary) -> str:
    """The one-screen summary at the end of an extraction."""
    if s.aggregated:
        return aggregate_summary(s)
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


def aggregate_summary(s: ExtractSummary) -> str:
    """The summary of `extract --aggregate`: what was counted, not stored per sentence."""
    resumed = f" (resumed: {s.n_chunks_before} chunks were already committed)" if s.n_chunks_before else ""
    langs = ", ".join(f"{k} {v}" for k, v in sorted(s.languages.items()))
    read = (
        f"{s.n_sentences} sentences packed into {s.n_windows} windows" if s.n_windows else f"{s.n_sentences} sentences"
    )
    lines = [
        f"run '{s.run}' complete in {s.db}: fired-token counts per language, layer and neuron{resumed}",
        f"  model        {s.model}",
        f"  read         {read}; {s.n_truncated} truncated at max length",
        f"  languages    {langs}",
        f"  layers       {', '.join(map(str, s.layers))} x {s.hidden_size} FFN neurons",
        f"  speed        {s.seconds:.1f} s; LAPE: select * from language_specific_neurons() where run = '{s.run}'",
    ]
    return "\n".join(lines)
