"""The `neurons` command: a thin click layer over the library calls in `toolkit.*`, one module per command
group (capture, store, findings, figures, causal, scale). Every failure becomes one line in `OneLineGroup`."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit import __version__
from toolkit.cli import capture, causal, explorer, figures, findings, scale, store
from toolkit.cli.base import Context, OneLineGroup
from toolkit.store.warehouse import default_db


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    envvar="NEURONS_DB",
    default=None,
    help="Warehouse file (env NEURONS_DB; default warehouse/activations.duckdb).",
)
@click.version_option(__version__, prog_name="neurons")
@click.pass_context
def cli(ctx: click.Context, db: Path | None) -> None:
    """Neuron-level analysis of language models across languages.

    Extract activations of a fine-tuned encoder or a decoder LM into a DuckDB warehouse, then query them with SQL.
    Start with `neurons demo` (`neurons demo --decoder` for the LAPE study on a decoder).
    """
    ctx.obj = Context(db or default_db())


for _module in (capture, store, findings, explorer, figures, causal, scale):
    for _command in _module.COMMANDS:
        cli.add_command(_command)

SHORT_HELP = {
    "extract": "Extract activations of a model on a dataset into a run.",
    "load": "Import a long-format activations table as a run.",
    "runs": "List the runs in the warehouse.",
    "delete": "Delete a run and everything computed from it.",
    "query": "Run read-only SQL on the warehouse.",
    "analyze": "The paper's findings for a run (or the layer sweep).",
    "significance": "Test the findings against chance (permutations, bootstrap, ANOVA).",
    "chart": "Draw one figure as PNG, SVG, PDF or HTML.",
    "report": "Write the self-contained HTML report with figures and tables.",
    "export": "Export a view or query as CSV, Parquet, JSON, Markdown or LaTeX.",
    "finetune": "Fine-tune a classifier with the paper's recipe.",
    "ablate": "Ablate neurons inside the model against random controls (--lape: the LAPE test).",
    "steer": "Steer a decoder's output language with its LAPE neurons.",
    "demo": "Run the whole workflow on the bundled sample with a tiny model.",
    "upgrade": "Migrate a warehouse made by an older version.",
    "neuron": "One neuron's card: profile, classes, density, neighbours, sentences, tokens.",
    "tokens": "Store token values of a layer's neurons for the report's explorer.",
    "probe": "Linear probes: transfer across languages, neuron rankings, top-k.",
    "compare": "Compare two runs: CKA between layers, how each neuron changed.",
    "lake": "Sharded runs in a Delta Lake: status, attach.",
    "spark": "The statistics on Spark over a lake: moments, sql.",
}
for _name, _text in SHORT_HELP.items():
    cli.commands[_name].short_help = _text


def main() -> None:
    cli(prog_name="neurons")
