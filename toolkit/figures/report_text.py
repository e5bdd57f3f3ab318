"""Plain-text summaries printed by the CLI."""

from __future__ import annotations

import polars as pl

from toolkit.capture.extract import ExtractSummary


def fitness_lines(fitness: pl.DataFrame | None) -> list[str]:
    """The summary lines of a run's tokenizer fitness (Warehouse.tokenizer_fitness): fertility per language
    relative to the best-served one, and a warning naming the underserved languages."""
    if fitness is None or fitness.is_empty() or fitness["fertility"].is_null().all():
        return []
    rows = fitness.sort("fertility_ratio", nulls_last=True).to_dicts()
    ref = next(r for r in rows if r["language"] == r["reference_language"])
    others = [
        f"{r['language']} {r['fertility_ratio']:.2f}x{' (no word spaces)' if r['unspaced'] else ''}"
        for r in rows
        if r is not ref and r["fertility_ratio"] is not None
    ]
    best = f"{ref['language']} {ref['fertility']:.2f} tokens/word" + (" (best served)" if others else "")
    lines = [f"  fertility    {'; '.join([best, ', '.join(others)] if others else [best])}"]
    poor = [r["language"] for r in rows if r["underserved"]]
    if poor:
        lines.append(
            f"  warning      {', '.join(poor)}: over {ref['limit']:g}x the tokens per word of {ref['language']}; the "
            "tokenizer serves them poorly, so their findings may show its pieces more than the model (definition 18)"
        )
    return lines


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
        *fitness_lines(s.fitness),
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
        *fitness_lines(s.fitness),
        f"  speed        {s.seconds:.1f} s; LAPE: select * from language_specific_neurons() where run = '{s.run}'",
    ]
    return "\n".join(lines)
