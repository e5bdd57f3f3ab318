"""Fine-tuning, per-language evaluation in SQL, and ablation with hooks that are always removed."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from conftest import assert_one_line_error, digest
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from toolkit.capture.datasets import read_dataset
from toolkit.capture.extract import ExtractOptions, extract
from toolkit.capture.finetune import EPS, LinearHead, fold_linear_head
from toolkit.capture.hooks import hidden_state_module as layer_module
from toolkit.capture.models import load_model
from toolkit.capture.tinymodels import build_model, save_checkpoint, train_tokenizer
from toolkit.causal.ablate import ablated
from toolkit.cli.demo import LABELS
from toolkit.store.warehouse import Warehouse

PLANTED = [3, 9, 14, 22, 27, 30]


def macro_f1(gold: list[str], pred: list[str]) -> float:
    """Independent macro-F1 over the labels present in gold or predictions (sklearn's definition)."""
    scores = []
    for label in sorted(set(gold) | set(pred)):
        tp = sum(g == p == label for g, p in zip(gold, pred))
        n_pred, n_gold = sum(p == label for p in pred), sum(g == label for g in gold)
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_gold if n_gold else 0.0
        scores.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return float(np.mean(scores))


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory, sample):
    """A tiny BERT trained so that only PLANTED neurons of the last layer's [CLS] reach the classifier."""
    tok = train_tokenizer(sample["text"].to_list(), "bert", vocab_size=600, max_length=64)
    model = build_model("bert", tok, LABELS, seed=3, hidden=32, layers=2, heads=2, max_length=64)
    keep = torch.zeros(32)
    keep[PLANTED] = 1.0
    with torch.no_grad():
        model.bert.pooler.dense.weight.mul_(keep)  # the head reads only the planted neurons ...
    model.bert.pooler.dense.weight.register_hook(lambda g: g * keep)  # ... and keeps doing so while training
    from toolkit.capture.finetune import train_classifier

    result = train_classifier(
        model,
        tok,
        sample["text"].to_list(),
        sample["label"].to_list(),
        epochs=40,
        lr=1e-3,
        batch_size=16,
        seed=0,
        progress=False,
    )
    assert result.train_accuracy > 0.8
    return save_checkpoint(model, tok, tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="module")
def planted_db(tmp_path_factory, planted_model, sample):
    tmp = tmp_path_factory.mktemp("pdb")
    data = tmp / "data.csv"
    sample.write_csv(data)
    db = tmp / "w.duckdb"
    extract(db, str(planted_model), read_dataset(data), "p", ExtractOptions(layers="all"), progress=False)
    return db, data


def test_evaluation_views_match_an_independent_macro_f1(planted_db):
    db, _ = planted_db
    with Warehouse(db, read_only=True) as wh:
        sents = wh.sql("select language, label, predicted_label from sentences order by sentence_id")
        ev = wh.sql("select * from evaluation order by language")
        conf = wh.sql("select * from confusion")
    for row in ev.iter_rows(named=True):
        part = sents.filter(pl.col("language") == row["language"])
        gold, pred = part["label"].to_list(), part["predicted_label"].to_list()
        assert row["n_sentences"] == len(gold)
        assert row["accuracy"] == pytest.approx(np.mean([g == p for g, p in zip(gold, pred)]))
        assert row["macro_f1"] == pytest.approx(macro_f1(gold, pred), abs=1e-12)
        counts = Counter(zip(gold, pred))
        got = {
            (r["gold"], r["predicted"]): r["n"]
            for r in conf.filter(pl.col("language") == row["language"]).iter_rows(named=True)
        }
        assert got == dict(counts)


def test_ablating_the_planted_set_beats_every_control(planted_db, planted_model, neurons):
    db, data = planted_db
    r = neurons(
        "--db",
        db,
        "ablate",
        planted_model,
        data,
        "--run",
        "p",
        "--layer",
        "2",
        "--neurons",
        ",".join(map(str, PLANTED)),
        "--controls",
        "10",
        "--json",
        "--quiet",
    )
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    for row in out["summary"]:
        assert row["delta_accuracy"] < -0.2  # the signal is gone
        assert row["control_min_delta_macro_f1"] == pytest.approx(0.0) and row[
            "control_max_delta_macro_f1"
        ] == pytest.approx(0.0)
        assert row["target_rank"] == 1 and row["n_controls"] == 10
        assert row["baseline_at_chance"] is False  # the trained model beats guessing: a drop can show
    with Warehouse(db, read_only=True) as wh:
        base = wh.sql("select language, accuracy, macro_f1 from ablation_scores where set_index = 0 order by language")
        ev = wh.sql("select language, accuracy, macro_f1 from evaluation where run = 'p' order by language")
        # the unablated baseline reproduces the stored predictions (sums may differ in the last bit)
        assert base["language"].equals(ev["language"])
        np.testing.assert_allclose(
            base.select("accuracy", "macro_f1").to_numpy(), ev.select("accuracy", "macro_f1").to_numpy(), rtol=1e-12
        )
        sets = wh.sql("select set_index, kind, neurons from ablation_sets order by set_index")
        assert sets["kind"].to_list() == ["baseline", "target"] + ["control"] * 10
        controls = [set(n) for n in sets["neurons"].to_list()[2:]]
        assert all(len(c) == len(PLANTED) and not c & set(PLANTED) for c in controls)
        recall = wh.sql("select * from ablation_recall")
        assert recall.height == 5 * 6


def test_mean_ablation_writes_the_stored_means(planted_db, planted_model):
    db, _ = planted_db
    loaded = load_model(str(planted_model), "cpu")
    module = layer_module(loaded.model, loaded.n_layers, 2)
    with Warehouse(db, read_only=True) as wh:
        means = wh.sql(
            "select neuron, mean from activation_means where run = 'p' and layer = 2 and language = 'nl' "
            "order by neuron"
        )["mean"].to_numpy()
    captured = {}
    ids = torch.tensor([[2, 40, 41, 42, 3], [2, 50, 51, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    chosen = [1, 9, 30]
    with torch.inference_mode():
        plain = loaded.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[2].clone()
        with ablated(module, chosen, "cls", {"current": torch.tensor(means[chosen], dtype=torch.float32)}):
            grab = module.register_forward_hook(
                lambda m, i, o: captured.setdefault("h", (o[0] if isinstance(o, tuple) else o).clone())
            )
            loaded.model(input_ids=ids, attention_mask=mask)
            grab.remove()
    h = captured["h"]
    np.testing.assert_allclose(h[:, 0, chosen].numpy(), np.tile(means[chosen], (2, 1)), rtol=1e-6)
    changed = torch.ones_like(h, dtype=torch.bool)
    changed[:, 0, chosen] = False
    assert torch.equal(h[changed], plain[changed])  # nothing else at that layer moved


@pytest.mark.parametrize("positions", ["cls", "all"])
def test_hook_changes_exactly_the_chosen_neurons_and_is_removed(planted_model, positions):
    loaded = load_model(str(planted_model), "cpu")
    module = layer_module(loaded.model, loaded.n_layers, 1)
    ids = torch.tensor([[2, 40, 41, 42, 3]])
    captured = {}
    with torch.inference_mode():
        before = loaded.model(input_ids=ids, output_hidden_states=True)
        hooks = dict(module._forward_hooks)  # transformers keeps hooks of its own
        with ablated(module, [0, 5], positions, {"current": torch.zeros(2)}):
            grab = module.register_forward_hook(
                lambda m, i, o: captured.setdefault("h", (o[0] if isinstance(o, tuple) else o).clone())
            )
            loaded.model(input_ids=ids)
            grab.remove()
        after = loaded.model(input_ids=ids, output_hidden_states=True)
    h, plain = captured["h"], before.hidden_states[1]
    where = torch.zeros_like(h, dtype=torch.bool)
    if positions == "cls":
        where[:, 0, [0, 5]] = True
    else:
        where[:, :, [0, 5]] = True
    assert torch.all(h[where] == 0) and torch.equal(h[~where], plain[~where])
    assert dict(module._forward_hooks) == hooks  # ours is removed
    assert torch.equal(after.logits, before.logits)  # the model predicts exactly as before
    with pytest.raises(RuntimeError):
        with ablated(module, [0], positions, {"current": torch.zeros(1)}):
            raise RuntimeError("failure half-way")
    assert dict(module._forward_hooks) == hooks


def test_empty_set_equals_baseline(planted_db, planted_model):
    from toolkit.causal.ablate import predict, prepare

    _, data = planted_db
    loaded = load_model(str(planted_model), "cpu")
    prep = prepare(loaded, read_dataset(data), 16, None)
    module = layer_module(loaded.model, loaded.n_layers, 2)
    assert np.array_equal(predict(loaded, prep), predict(loaded, prep, module, [], "all"))


def test_ablation_bad_input(tmp_path, planted_db, planted_model, checkpoint, neurons):
    db, data = planted_db
    before = digest(db)
    base = ("--db", db, "ablate", planted_model, data, "--run", "p", "--quiet")
    assert_one_line_error(neurons(*base, "--layer", "2", "--neurons", "3,99"), "out of range", "0..31")
    assert_one_line_error(neurons(*base, "--layer", "7", "--neurons", "3"), "has no layer 7")
    assert_one_line_error(
        neurons(*base, "--layer", "2", "--query", "select 1 as x"), "must return a column named neuron"
    )
    assert_one_line_error(neurons(*base, "--layer", "2"), "exactly one of --neurons, --query or --top-variance")
    # no silent coercion: fractional, textual or empty neuron sets are refused, not rounded or stored empty
    assert_one_line_error(neurons(*base, "--layer", "2", "--query", "select 1.7 as neuron"), "not whole numbers")
    assert_one_line_error(neurons(*base, "--layer", "2", "--query", "select 'a' as neuron"), "not whole numbers")
    assert_one_line_error(neurons(*base, "--layer", "2", "--neurons", ""), "names no neuron")
    assert_one_line_error(
        neurons(*base, "--layer", "2", "--query", "select 1 as neuron where false"), "chose no neuron"
    )
    assert_one_line_error(neurons(*base, "--layer", "2", "--neurons", "3", "--seed", "-1"), "--seed")
    odd = tmp_path / "odd.csv"
    odd.write_text("text,language,label\nhello there,en,awe\n")
    assert_one_line_error(
        neurons("--db", db, "ablate", planted_model, odd, "--run", "p", "--layer", "2", "--neurons", "3", "--quiet"),
        "1 of 1 sentences differ from run 'p'",
        "--data-override",
    )
    assert_one_line_error(
        neurons(
            "--db",
            db,
            "ablate",
            planted_model,
            odd,
            "--run",
            "p",
            "--layer",
            "2",
            "--neurons",
            "3",
            "--quiet",
            "--data-override",
        ),
        "awe",
        "unknown to the model",
    )
    assert digest(db) == before
    other = checkpoint("bert", True)  # 32 neurons too, another model: a clear warning, then it runs
    r = neurons(
        "--db",
        db,
        "ablate",
        other,
        data,
        "--run",
        "p",
        "--layer",
        "2",
        "--neurons",
        "3",
        "--controls",
        "2",
        "--quiet",
        "--json",
    )
    assert r.exit_code == 0 and "warning: run 'p' was extracted from" in r.stderr


def test_finetune_linear_head_reloads_as_a_standard_checkpoint(tmp_path, checkpoint, sample, neurons):
    data = tmp_path / "data.csv"
    sample.write_csv(data)
    base = checkpoint("xlm-roberta", False)
    out = tmp_path / "ft"
    recipe = ("--split", "train", "--epochs", "25", "--lr", "2e-3", "--batch-size", "16", "--seed", "1", "--quiet")
    r = neurons("finetune", base, data, "--out", out, *recipe)
    assert r.exit_code == 0, r.stderr
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert model.config.id2label == dict(enumerate(sorted(LABELS)))
    tok = AutoTokenizer.from_pretrained(out)
    train = sample.filter(pl.col("split") == "train")
    enc = tok(train["text"].to_list(), padding=True, return_tensors="pt")
    with torch.no_grad():
        pred = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.argmax(-1)
    accuracy = float(np.mean([model.config.id2label[int(p)] == g for p, g in zip(pred, train["label"])]))
    assert accuracy > 0.5  # chance is 1/6
    # two runs with the same seed give the same weights (two epochs each: the same check at a tenth of the cost)
    short = [*recipe[:2], "--epochs", "2", *recipe[4:]]
    twice = []
    for name in ("ft2", "ft3"):
        assert neurons("finetune", base, data, "--out", tmp_path / name, *short).exit_code == 0
        twice.append(AutoModelForSequenceClassification.from_pretrained(tmp_path / name).state_dict())
    assert all(torch.equal(twice[0][k], twice[1][k]) for k in twice[0])
    # extract and everything else accept it; the report says how the model was fine-tuned (its saved record)
    assert neurons("--db", tmp_path / "w.duckdb", "extract", out, data, "--run", "ft", "--quiet").exit_code == 0
    assert neurons("--db", tmp_path / "w.duckdb", "report", "--run", "ft", "--out", tmp_path / "rep").exit_code == 0
    record = json.loads((out / "neurons-finetune.json").read_text())
    told = dict(pl.read_csv(tmp_path / "rep" / "tables" / "finetune.csv").iter_rows())
    assert told["base model"] == record["base_model"] and told["epochs, learning rate, batch size"] == "25, 0.002, 16"
    assert told["trained on"] == f"{train.height} sentences in {', '.join(sorted(set(train['language'])))}"
    shared = tmp_path / "shared"  # --redact-paths: the record's paths by file name only
    assert (
        neurons("--db", tmp_path / "w.duckdb", "report", "--run", "ft", "--out", shared, "--redact-paths").exit_code
        == 0
    )
    redacted = dict(pl.read_csv(shared / "tables" / "finetune.csv").iter_rows())
    assert redacted["base model"] == Path(record["base_model"]).name and redacted["data"] == "data.csv"
    assert str(tmp_path) not in (shared / "index.html").read_text()


def test_folded_linear_head_equals_the_linear_map(checkpoint):
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint("bert", True)).eval()
    head = LinearHead(model)
    torch.manual_seed(0)
    with torch.no_grad():
        head.linear.weight.normal_(0, 2.0)
        head.linear.bias.normal_(0, 1.0)
    ids = torch.tensor([[2, 40, 41, 42, 3], [2, 50, 51, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    with torch.no_grad():
        want = head(ids, mask)
        got = fold_linear_head(head)(input_ids=ids, attention_mask=mask).logits
    assert EPS == 1e-4
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_finetune_bad_input(tmp_path, checkpoint, sample, neurons):
    data = tmp_path / "d.csv"
    sample.write_csv(data)
    assert_one_line_error(
        neurons("finetune", checkpoint(), data, "--out", tmp_path / "o", "--train-languages", "xx"),
        "no sentences in xx",
    )
    assert_one_line_error(
        neurons("finetune", checkpoint("distilbert", False), data, "--out", tmp_path / "o", "--head", "linear"),
        "--head linear is available for",
    )


def test_finetune_record_round_trips(tmp_path, checkpoint, sample, neurons):
    """--eval-split scores every epoch; the record saved with the checkpoint (and in the warehouse with --db)
    holds the options and the held-out scores, and the last epoch's scores are those of the saved checkpoint
    (macro-F1 computed here independently)."""
    data = tmp_path / "data.csv"
    sample.write_csv(data)
    db = tmp_path / "w.duckdb"  # not there yet: a fine-tune comes first, and makes the warehouse for its record
    out = tmp_path / "ft"
    args = (
        "finetune",
        checkpoint("xlm-roberta", False),
        data,
        "--out",
        out,
        "--split",
        "train",
        "--eval-split",
        "test",
        "--epochs",
        "2",
        "--lr",
        "2e-3",
        "--seed",
        "3",
        "--quiet",
    )
    r = neurons("--db", db, *args)
    assert r.exit_code == 0, r.stderr
    record = json.loads((out / "neurons-finetune.json").read_text())
    assert (
        record["options"]["epochs"] == 2 and record["options"]["lr"] == 2e-3 and record["data"]["eval_split"] == "test"
    )
    assert record["data"]["data_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert [e["epoch"] for e in record["history"]] == [1, 2] and record["n_train"] == 150
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    test = sample.filter(pl.col("split") == "test")
    for score in record["history"][-1]["scores"]:
        rows = test.filter(pl.col("language") == score["language"])
        enc = tok(rows["text"].to_list(), padding=True, return_tensors="pt")
        with torch.no_grad():
            pred = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.argmax(-1)
        names = [model.config.id2label[int(i)] for i in pred]
        assert score["macro_f1"] == pytest.approx(macro_f1(rows["label"].to_list(), names), abs=1e-9)
    stored = json.loads(
        neurons("--db", db, "query", "select * from finetune_epochs order by epoch, language", "--json").stdout
    )
    assert len(stored) == 2 * 5 and stored[-1]["macro_f1"] == pytest.approx(
        record["history"][-1]["scores"][-1]["macro_f1"]
    )
    overlap = neurons(
        "finetune",
        checkpoint("xlm-roberta", False),
        data,
        "--out",
        tmp_path / "o2",
        "--split",
        "train",
        "--eval-split",
        "train",
        "--quiet",
    )
    assert_one_line_error(overlap, "shares 150 sentence(s)")


def test_ablate_defaults_to_the_runs_model_and_data_and_ablations_can_be_deleted(planted_db, neurons):
    """Without MODEL and DATA the run's own are used (with its columns and splits); the summary gives accuracy and
    the target's rank in words; `delete --ablation` removes exactly that ablation."""
    db, _ = planted_db
    r = neurons(
        "--db",
        db,
        "ablate",
        "--run",
        "p",
        "--layer",
        "2",
        "--neurons",
        ",".join(map(str, PLANTED)),
        "--controls",
        "3",
        "--quiet",
    )
    assert r.exit_code == 0, r.stderr
    assert "baseline_accuracy" in r.stdout and "target_accuracy" in r.stdout
    assert "is the largest of 4 sets (the target and 3 random ones) in" in r.stdout
    ids = json.loads(
        neurons(
            "--db",
            db,
            "query",
            "select ablation_id, data_file, n_sentences from ablations order by ablation_id",
            "--json",
        ).stdout
    )
    with Warehouse(db, read_only=True) as wh:
        run = wh.run_row("p")
    assert ids[-1]["data_file"] == run["data_file"] and ids[-1]["n_sentences"] == run["n_sentences"]
    latest = ids[-1]["ablation_id"]
    assert neurons("--db", db, "delete", "--ablation", latest, "--yes").exit_code == 0
    left = json.loads(
        neurons(
            "--db",
            db,
            "query",
            "select (select count(*) from ablations where ablation_id = "
            f"{latest}) + (select count(*) from ablation_predictions where ablation_id = {latest}) "
            "as n, (select count(*) from ablations) as others",
            "--json",
        ).stdout
    )
    assert left == [{"n": 0, "others": len(ids) - 1}]
    assert_one_line_error(neurons("--db", db, "delete", "--ablation", latest, "--yes"), f"no ablation {latest}")
    assert_one_line_error(neurons("--db", db, "delete", "--yes"), "exactly one of --run or --ablation")


def test_macro_f1_chance_test_holds_its_level_on_null_data_and_finds_real_signal():
    """The macro-F1 chance test of view `evaluation` (permutation null), run on 300 simulated languages whose
    predictions ignore the input (imbalanced gold labels, a predictor biased to one label): it rejects at most
    5 % of them (within binomial sampling error); predictions right 45 % of the time on 4 labels are rejected
    in nearly all; accuracy keeps its binomial bound of 1/k."""
    from toolkit.store.evaluation import chance

    rng = np.random.default_rng(11)
    labels = np.array(["anger", "fear", "joy", "sadness"])
    language, gold, predicted = [], [], []
    cases = 300
    for case in range(cases):
        n = 100
        g = rng.choice(labels, n, p=[0.4, 0.3, 0.2, 0.1])
        if case < cases - 50:  # null: predictions independent of gold
            p = rng.choice(labels, n, p=[0.1, 0.2, 0.3, 0.4])
        else:  # signal: right 45 % of the time, else a random label
            p = np.where(rng.random(n) < 0.45, g, rng.choice(labels, n))
        language += [f"L{case:03d}"] * n
        gold += g.tolist()
        predicted += p.tolist()
    result = chance(language, gold, predicted).sort("language")
    null, signal = result.head(cases - 50), result.tail(50)
    rate = float((~null["at_chance"]).mean())
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / null.height), rate
    assert float((~signal["at_chance"]).mean()) >= 0.9
    accuracy_bound = 1 / 4 + 1.959964 * np.sqrt(0.25 * 0.75 / 100)
    assert null["accuracy_chance_high"].to_numpy() == pytest.approx(accuracy_bound)


@pytest.mark.parametrize("architecture", ["xlm-roberta", "bert", "distilbert", "llama", "opt", "gemma2"])
def test_replaying_the_lower_blocks_gives_the_full_passes_logits(checkpoint, sample, architecture, tmp_path):
    """The blocks below the ablated layer run once per batch (toolkit.causal.replay): under every set, zero or
    mean, at [CLS] or every position, at every layer, the logits equal a full forward pass bit for bit, and
    ablate's predictions with reuse equal those without."""
    from toolkit.causal.ablate import predict_sets, prepare
    from toolkit.causal.replay import Replay, lower_modules

    loaded = load_model(str(checkpoint(architecture, True)), "cpu")
    texts = sample["text"].to_list()[:12]
    enc = loaded.tokenizer(texts, padding=True, return_tensors="pt")
    rng = np.random.default_rng(0)
    for layer in range(loaded.n_layers + 1):
        module = layer_module(loaded.model, loaded.n_layers, layer)
        replay = Replay(lower_modules(loaded.model, loaded.n_layers, layer))
        with torch.inference_mode():
            with replay.recording():
                plain = loaded.model(**enc).logits
            for positions in ("cls", "all"):
                chosen = sorted(rng.choice(loaded.hidden_size, 5, replace=False).tolist())
                value = {"current": torch.tensor(rng.normal(size=5), dtype=torch.float32)}
                with ablated(module, chosen, positions, value):
                    full = loaded.model(**enc).logits
                    with replay.replaying():
                        fast = loaded.model(**enc).logits
                assert torch.equal(fast, full), (layer, positions)
                assert not torch.equal(full, plain) or layer == loaded.n_layers  # the edit mattered
            with replay.replaying():
                assert torch.equal(loaded.model(**enc).logits, plain)  # and it left no trace in the record
    sample.head(40).write_csv(tmp_path / "d.csv")
    prep = prepare(loaded, read_dataset(tmp_path / "d.csv"), 8, None)
    sets = [[], [1, 4, 9], [0, 2], [5]]
    means = [None, None, None, None]
    module = layer_module(loaded.model, loaded.n_layers, 1)
    replay = Replay(lower_modules(loaded.model, loaded.n_layers, 1))
    with_reuse = predict_sets(loaded, prep, module, sets, "all", means, replay=replay)
    without = predict_sets(loaded, prep, module, sets, "all", means)
    assert all(np.array_equal(a, b) for a, b in zip(with_reuse, without))


def test_an_ablation_where_the_model_is_at_chance_says_so(tmp_path, planted_db, checkpoint, neurons):
    """An untrained classifier guesses: on every language its accuracy is within definition 13's bound of guessing
    (1/k + 1.96 sqrt((1/k)(1 - 1/k)/n), computed here), so ablate, its summary view and analyze say that no drop
    can show there (the trained model's is not at chance: test_ablating_the_planted_set_beats_every_control)."""
    import shutil

    db, data = tmp_path / "w.duckdb", planted_db[1]
    shutil.copy(planted_db[0], db)
    r = neurons("--db", db, "ablate", checkpoint("bert", True), data, "--run", "p", "--layer", "2", "--neurons", "3,9",
                "--controls", "2", "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    frame = pl.read_csv(data)
    with Warehouse(db, read_only=True) as wh:
        rows = wh.sql("select ablation_id, language, baseline_accuracy, baseline_at_chance from ablation_summary")
    newest = rows["ablation_id"].max()
    for ablation_id, language, accuracy, at_chance in rows.iter_rows():
        mine = frame.filter(pl.col("language") == language)
        k, n = mine["label"].n_unique(), mine.height
        if ablation_id == newest:  # the other tests' ablations ran on subsets: only the newest has all of them
            assert at_chance == (accuracy <= 1 / k + 1.959964 * np.sqrt((1 / k) * (1 - 1 / k) / n)) and at_chance
    assert "the model is at chance on these sentences in ar, en, ja, nl, sl" in r.stdout
    notes = json.loads(neurons("--db", db, "analyze", "--run", "p", "--json").stdout)["caveats"]
    assert any(c.startswith(f"Ablation {newest} ran where the model is at chance in ar, en, ja, nl, sl") for c in notes)
