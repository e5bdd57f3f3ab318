"""A run as an object, and the one builder of a `runs` record.

`Warehouse.run(name)` returns a `Run`: its row, layers, default layer, site, pooling and where its activations
live, fetched once and passed down instead of the name. `run_record` makes the `runs` row of every run maker
(extraction, shards, imports, arrays written to a lake, attached lake runs), so the columns are filled in one
place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from toolkit import __version__
from toolkit.errors import UserError


def default_layer(layers: list[int]) -> int:
    """The paper's choice, the penultimate layer, when the run holds it: max - 1 if stored, else max."""
    top = max(layers)
    return top - 1 if top - 1 in layers and len(layers) > 1 else top


@dataclass(frozen=True)
class Run:
    """One run of a warehouse, as its `runs` row says."""

    id: int
    name: str
    row: dict  # the whole `runs` row

    @property
    def status(self) -> str:
        return self.row["status"]

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def layers(self) -> list[int]:
        return [int(x) for x in self.row["layers"]]

    @property
    def default_layer(self) -> int:
        return default_layer(self.layers)

    @property
    def site(self) -> str:
        return self.row.get("site") or "residual"

    @property
    def pooling(self) -> str | None:
        return self.row.get("pooling")

    @property
    def model(self) -> str | None:
        return self.row.get("model")

    @property
    def hidden_size(self) -> int:
        return int(self.row["hidden_size"])

    @property
    def n_sentences(self) -> int:
        return int(self.row["n_sentences"])

    @property
    def settings(self) -> dict:
        return json.loads(self.row["settings"])

    @property
    def aggregated(self) -> bool:
        """Whether the run holds corpus counts (`extract --aggregate`) instead of per-sentence values."""
        return bool(self.row.get("aggregated"))

    def per_sentence(self, what: str) -> Run:
        """This run, refused in one line when it holds corpus counts, which WHAT cannot read."""
        if self.aggregated:
            raise UserError(
                f"run '{self.name}' holds corpus counts (extract --aggregate), not per-sentence values; {what} needs "
                "a run extracted without --aggregate (LAPE, `ablate --lape` and `steer` read this one)"
            )
        return self

    @property
    def stored_in(self) -> str:
        """'lake' for a run attached from a lake (its activations are read in place), else 'warehouse'."""
        return "lake" if self.row.get("source") == "lake" else "warehouse"

    def layer(self, requested: int | None) -> int:
        """REQUESTED when the run stores it (an error naming the stored layers otherwise); the default layer for None."""
        if requested is None:
            return self.default_layer
        if requested not in self.layers:
            raise UserError(
                f"run '{self.name}' has no layer {requested} (stored: {', '.join(map(str, self.layers))}); "
                "pick one of those"
            )
        return requested


def run_record(
    name: str,
    source: str,
    *,
    data_file: str,
    data_sha256: str,
    layers: list[int],
    hidden_size: int,
    counts: tuple[int, int, int],
    settings: dict,
    site: str = "residual",
    pooling: str | None = None,
    model: str | None = None,
    model_type: str | None = None,
    class_names: list[str] | None = None,
    complete: bool = False,
) -> dict:
    """The `runs` row (without run_id) of a run made by SOURCE: COUNTS are (sentences, languages, labels);
    SETTINGS everything that determines the stored numbers. A COMPLETE run (an import, one transaction) is
    finished when made; any other starts 'incomplete'."""
    now = datetime.now()
    n_sentences, n_languages, n_labels = (int(x) for x in counts)
    return {
        "name": name,
        "status": "complete" if complete else "incomplete",
        "source": source,
        "model": model,
        "model_type": model_type,
        "data_file": data_file,
        "data_sha256": data_sha256,
        "layers": list(layers),
        "site": site,
        "pooling": pooling,
        "hidden_size": int(hidden_size),
        "n_sentences": n_sentences,
        "n_languages": n_languages,
        "n_labels": n_labels,
        "class_names": class_names,
        "settings": json.dumps(settings),
        "created_at": now,
        **({"finished_at": now} if complete else {}),
        "toolkit_version": __version__,
    }


def frame_counts(frame) -> tuple[int, int, int]:
    """(sentences, languages, labels) of a frame with language and label columns."""
    return frame.height, frame["language"].n_unique(), frame["label"].n_unique()
