"""Stored activations equal the model's own hidden states, computed independently in the test."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from toolkit.capture.datasets import read_dataset
from toolkit.capture.extract import ExtractOptions, extract
from toolkit.capture.hooks import block_list, truncated
from toolkit.capture.models import load_model, parse_layers


def reference_states(ckpt, texts: list[str], classifier: bool, max_length: int = 64):
    """Each sentence alone (no padding): hidden_states as [sentence][layer] -> [tokens, hidden], and logits."""
    tok = AutoTokenizer.from_pretrained(ckpt)
    cls = AutoModelForSequenceClassification if classifier else AutoModel
    model = cls.from_pretrained(ckpt).eval()
    states, logits = [], []
    with torch.no_grad():
        for t in texts:
            enc = tok(t, return_tensors="pt", truncation=True, max_length=max_length)
            out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
            states.append([h[0].numpy() for h in out.hidden_states])
            logits.append(out.logits[0].numpy() if classifier else None)
    return states, logits


def stored(db, run: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    con = duckdb.connect(str(db), read_only=True)
    acts = con.sql(
        "select sentence_id, layer, neuron, value from activations_long where run = ? order by all", params=[run]
    ).pl()
    sents = con.sql(
        "select s.* from sentences s join runs r using (run_id) where r.name = ? order by sentence_id", params=[run]
    ).pl()
    con.close()
    return acts, sents


def as_cube(acts: pl.DataFrame, n_sent: int, layers: list[int], hidden: int) -> np.ndarray:
    assert acts.height == n_sent * len(layers) * hidden  # exact row count
    return acts["value"].to_numpy().reshape(n_sent, len(layers), hidden)


@pytest.mark.parametrize("architecture", ["xlm-roberta", "bert", "distilbert"])
@pytest.mark.parametrize("classifier", [True, False])
def test_cls_values_equal_hidden_states_at_every_layer(tmp_path, checkpoint, data_csv, architecture, classifier):
    ckpt = checkpoint(architecture, classifier)
    data = read_dataset(data_csv, limit=37)
    db = tmp_path / "w.duckdb"
    # batch of 8 sorted by length: most sentences sit in a padded batch
    extract(db, str(ckpt), data, "r", ExtractOptions(layers="all", batch_size=8), progress=False)
    acts, sents = stored(db, "r")
    texts = data.frame["text"].to_list()
    ref, logits = reference_states(ckpt, texts, classifier)
    cube = as_cube(acts, len(texts), list(range(4)), 32)
    expected = np.stack([[ref[s][k][0] for k in range(4)] for s in range(len(texts))])
    np.testing.assert_allclose(cube, expected, atol=1e-5, rtol=0)
    assert sents["sentence_id"].to_list() == list(range(37))
    if classifier:
        probs = np.stack(sents["probabilities"].to_list())
        ref_logits = np.stack(logits)
        ref_probs = np.exp(ref_logits - ref_logits.max(1, keepdims=True))
        ref_probs /= ref_probs.sum(1, keepdims=True)
        np.testing.assert_allclose(probs, ref_probs, atol=1e-5)
        names = AutoModelForSequenceClassification.from_pretrained(ckpt).config.id2label
        assert sents["predicted_label"].to_list() == [names[int(i)] for i in ref_logits.argmax(1)]
    else:
        assert sents["predicted_label"].null_count() == sents.height


def test_mean_pooling_is_the_masked_mean(tmp_path, checkpoint, data_csv):
    ckpt = checkpoint("xlm-roberta", True)
    data = read_dataset(data_csv, limit=30)
    db = tmp_path / "w.duckdb"
    extract(db, str(ckpt), data, "m", ExtractOptions(layers="1,3", pooling="mean", batch_size=7), progress=False)
    acts, _ = stored(db, "m")
    ref, _ = reference_states(ckpt, data.frame["text"].to_list(), True)
    cube = as_cube(acts, 30, [1, 3], 32)
    expected = np.stack([[ref[s][k].mean(axis=0) for k in (1, 3)] for s in range(30)])
    np.testing.assert_allclose(cube, expected, atol=1e-5, rtol=0)


def test_alone_and_in_a_padded_batch_agree(tmp_path, checkpoint, data_csv):
    ckpt = checkpoint("bert", False)
    data = read_dataset(data_csv, limit=40)
    one, many = tmp_path / "one.duckdb", tmp_path / "many.duckdb"
    extract(one, str(ckpt), data, "r", ExtractOptions(layers="-1", batch_size=1), progress=False)
    extract(many, str(ckpt), data, "r", ExtractOptions(layers="-1", batch_size=16), progress=False)
    a, _ = stored(one, "r")
    b, _ = stored(many, "r")
    np.testing.assert_allclose(a["value"].to_numpy(), b["value"].to_numpy(), atol=1e-5, rtol=0)


def test_bare_encoder_stops_at_the_deepest_requested_layer(checkpoint):
    ckpt = checkpoint("xlm-roberta", False)
    loaded = load_model(str(ckpt), "cpu")
    _, _, blocks = block_list(loaded.model, loaded.n_layers)
    calls = [0] * len(blocks)
    hooks = [
        b.register_forward_hook(lambda m, i, o, k=k: calls.__setitem__(k, calls[k] + 1)) for k, b in enumerate(blocks)
    ]
    ids = torch.tensor([[0, 10, 11, 2]])
    with torch.inference_mode():
        full = loaded.model(input_ids=ids, output_hidden_states=True).hidden_states
        calls[:] = [0] * len(blocks)
        with truncated(loaded.model, loaded.n_layers, 1):
            short = loaded.model(input_ids=ids, output_hidden_states=True).hidden_states
    for h in hooks:
        h.remove()
    assert calls == [1, 0, 0]
    assert len(short) == 2
    torch.testing.assert_close(short[1], full[1])
    assert len(block_list(loaded.model, loaded.n_layers)[2]) == 3  # restored


def test_truncation_is_counted(tmp_path, checkpoint, data_csv):
    ckpt = checkpoint("xlm-roberta", True)
    data = read_dataset(data_csv)
    tok = AutoTokenizer.from_pretrained(ckpt)
    lengths = [len(x) for x in tok(data.frame["text"].to_list())["input_ids"]]
    cut_at = int(np.median(lengths))
    summary = extract(
        tmp_path / "w.duckdb", str(ckpt), data, "t", ExtractOptions(layers="1", max_length=cut_at), progress=False
    )
    assert summary.n_truncated == sum(n > cut_at for n in lengths) > 0
    _, sents = stored(tmp_path / "w.duckdb", "t")
    assert sents["n_tokens"].max() == cut_at
    assert int(sents["truncated"].sum()) == summary.n_truncated


def test_split_filter_ids_and_limit(tmp_path, checkpoint, data_csv, sample):
    data = read_dataset(data_csv, id_column="id", split_column="split", splits=["test"], limit=25)
    extract(tmp_path / "w.duckdb", str(checkpoint()), data, "s", ExtractOptions(layers="0"), progress=False)
    _, sents = stored(tmp_path / "w.duckdb", "s")
    expected = sample.with_row_index("row").filter(pl.col("split") == "test").head(25)
    assert sents["sentence_id"].to_list() == expected["row"].to_list()
    assert sents["source_id"].to_list() == expected["id"].to_list()
    assert set(sents["split"].to_list()) == {"test"}


def test_layer_numbering_follows_hidden_states():
    assert parse_layers("-2", 12) == [11]  # the paper's layer 11 of a 12-layer model
    assert parse_layers("all", 3) == [0, 1, 2, 3]
    assert parse_layers("6,11, 6", 12) == [6, 11]
    assert parse_layers("-1", 12) == [12]
    assert parse_layers("0", 12) == [0]


def test_bfloat16_model_stores_float32_close_to_float32(tmp_path, checkpoint, data_csv):
    ckpt = checkpoint("xlm-roberta", True)
    data = read_dataset(data_csv, limit=24)
    extract(tmp_path / "a.duckdb", str(ckpt), data, "r", ExtractOptions(layers="-1", device="cpu"), progress=False)
    extract(
        tmp_path / "b.duckdb",
        str(ckpt),
        data,
        "r",
        ExtractOptions(layers="-1", device="cpu", dtype="bfloat16"),
        progress=False,
    )
    a, _ = stored(tmp_path / "a.duckdb", "r")
    b, _ = stored(tmp_path / "b.duckdb", "r")
    con = duckdb.connect(str(tmp_path / "b.duckdb"), read_only=True)
    assert (
        con.execute(
            "select data_type from information_schema.columns where table_name = 'activations' "
            "and column_name = 'value'"
        ).fetchall()[0][0]
        == "FLOAT"
    )
    con.close()
    np.testing.assert_allclose(b["value"].to_numpy(), a["value"].to_numpy(), atol=0.15)
    assert not np.array_equal(b["value"].to_numpy(), a["value"].to_numpy())


def test_id_column_may_be_the_text_column(data_csv):
    """Sentences identified by their own text (unique in the data) read as any other id column."""
    data = read_dataset(data_csv, id_column="text")
    assert data.frame["source_id"].to_list() == data.frame["text"].to_list()


@pytest.mark.parametrize("architecture", ["xlm-roberta", "llama"])
def test_device_map_auto_stores_what_one_device_stores(tmp_path, checkpoint, data_csv, architecture):
    """`--device-map auto` (accelerate places the blocks; here every one on the CPU) stores the values a plain
    extraction stores, for every layer, an encoder's predictions and a decoder's mean over its tokens; an unknown
    placement is refused before anything is loaded."""
    from toolkit.errors import UserError

    ckpt = checkpoint(architecture, architecture != "llama")
    dataset = read_dataset(data_csv)
    pooling = "mean" if architecture == "llama" else "cls"
    for run, device_map in (("plain", None), ("mapped", "auto")):
        opts = ExtractOptions(layers="all", pooling=pooling, device="cpu", device_map=device_map, batch_size=7)
        extract(tmp_path / "w.duckdb", str(ckpt), dataset, run, opts, progress=False)
    plain, plain_s = stored(tmp_path / "w.duckdb", "plain")
    mapped, mapped_s = stored(tmp_path / "w.duckdb", "mapped")
    np.testing.assert_allclose(mapped["value"].to_numpy(), plain["value"].to_numpy(), atol=1e-6)
    assert mapped_s["predicted_label"].to_list() == plain_s["predicted_label"].to_list()
    with pytest.raises(UserError, match="unknown --device-map"):
        ExtractOptions(device_map="everywhere")
