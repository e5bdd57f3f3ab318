"""Decoder language models (Llama, Qwen2, Gemma, GPT-2): every stored value equals an unpadded one-sentence
forward of the saved checkpoint, hooked here by hand (docs/definitions.md; README, "Decoders"), for the residual
stream (last, mean and max over the sentence's tokens) and the FFN value LAPE counts (mean, active share); a
BOS that the tokenizer adds is left out of mean, max, active and n_tokens."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import polars as pl
import pytest
import torch
from conftest import assert_one_line_error, assert_report_figures_valid
from transformers import AutoModelForCausalLM, AutoTokenizer

from toolkit.capture.tinymodels import DECODERS, MORE_DECODERS

FFN = {  # where each family's FFN value is, written out independently of the hooks table
    **{a: lambda m, k: m.model.layers[k - 1].mlp.act_fn for a in ("llama", "mistral", "qwen2", "qwen3")},
    **{a: lambda m, k: m.model.layers[k - 1].mlp.act_fn for a in ("gemma", "gemma2")},
    "gpt2": lambda m, k: m.transformer.h[k - 1].mlp.act,
    "bloom": lambda m, k: m.transformer.h[k - 1].mlp.gelu_impl,
    "opt": lambda m, k: m.model.decoder.layers[k - 1].activation_fn,
    "gpt_neox": lambda m, k: m.gpt_neox.layers[k - 1].mlp.act,
}
ADDS_BOS = {"llama": True, "gemma": True, "mistral": True, "gemma2": True, "opt": True}


def stored(db, run: str) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "select a.text, a.layer, a.neuron, a.value, s.n_tokens from activations_long a join runs r on r.name = a.run "
        "join sentences s on s.run_id = r.run_id and s.sentence_id = a.sentence_id where a.run = ?",
        [run],
    ).fetchall()
    con.close()
    return {(t, layer, n): (v, k) for t, layer, n, v, k in rows}


@pytest.mark.parametrize("architecture", DECODERS + MORE_DECODERS)
def test_decoder_values_equal_one_sentence_forwards(tmp_path, neurons, checkpoint, sample, architecture):
    ckpt = checkpoint(architecture, False)
    data = tmp_path / "d.csv"
    picked = sample.sample(24, seed=3)  # every script, lengths that differ within a batch
    picked.write_csv(data)
    db = tmp_path / "w.duckdb"
    runs = [("residual", p, "1,2") for p in ("last", "mean", "max")] + [("ffn", p, "all") for p in ("mean", "active")]
    if architecture in MORE_DECODERS:  # the same code paths: one pooling per site
        runs = [("residual", "mean", "1,2"), ("ffn", "active", "all")]
    for site, pooling, layers in runs:  # layers 1,2 of 3: the run stops above block 2 (a decoder norms its last)
        r = neurons(
            "--db", db, "extract", ckpt, data, "--run", f"{site}-{pooling}", "--site", site, "--pooling", pooling,
            "--layers", layers, "--batch-size", "8", "--quiet",
        )  # fmt: skip
        assert r.exit_code == 0, r.output

    model = AutoModelForCausalLM.from_pretrained(ckpt).eval()
    tok = AutoTokenizer.from_pretrained(ckpt)
    got = {(site, pooling): stored(db, f"{site}-{pooling}") for site, pooling, _ in runs}
    start = int(ADDS_BOS.get(architecture, False))
    for text in picked["text"]:
        ids = tok(text)["input_ids"]
        assert (ids[0] == tok.bos_token_id) == ADDS_BOS.get(architecture, False)
        captured = {}
        handles = [
            FFN[architecture](model, k).register_forward_hook(
                lambda _m, _i, out, k=k, into=captured: into.__setitem__(k, out)
            )
            for k in (1, 2, 3)
        ]
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_hidden_states=True)
        for h in handles:
            h.remove()
        expected = {}
        for k in (1, 2):
            h = out.hidden_states[k][0].double().numpy()
            expected[("residual", "last", k)] = h[-1]
            expected[("residual", "mean", k)] = h[start:].mean(0)
            expected[("residual", "max", k)] = h[start:].max(0)
        for k in (1, 2, 3):
            a = captured[k].reshape(len(ids), -1).double().numpy()  # OPT's blocks flatten the tokens
            expected[("ffn", "mean", k)] = a[start:].mean(0)
            expected[("ffn", "active", k)] = (a[start:] > 0).mean(0)
        for (site, pooling, k), want in expected.items():
            if (site, pooling) not in got:
                continue
            values = got[(site, pooling)]
            have = np.array([values[(text, k, n)][0] for n in range(want.size)])
            np.testing.assert_allclose(have, want, atol=1e-4, err_msg=f"{site} {pooling} layer {k}: {text}")
            assert values[(text, k, 0)][1] == len(ids) - start  # n_tokens: the tokens pooled


def test_decoder_refusals(tmp_path, neurons, checkpoint, sample):
    data = tmp_path / "d.csv"
    sample.head(8).write_csv(data)
    db = tmp_path / "w.duckdb"
    decoder = checkpoint("gpt2", False)
    assert_one_line_error(
        neurons("--db", db, "extract", decoder, data, "--run", "c", "--pooling", "cls", "--quiet"),
        "has no [CLS] token",
        "--pooling last",
    )
    assert_one_line_error(
        neurons("--db", db, "extract", checkpoint(), data, "--run", "l", "--pooling", "last", "--quiet"),
        "closing special token",
    )
    assert not db.exists()
    for model, expected in ((decoder, "last"), (checkpoint(), "cls")):  # the default: each kind's representation
        r = neurons("--db", db, "extract", model, data, "--run", expected, "--quiet")
        assert r.exit_code == 0, r.output
        assert f'"pooling": "{expected}"' in neurons("--db", db, "runs", "--json").stdout


def test_lape_deactivation_equals_hand_hooked_nll(tmp_path, neurons, checkpoint, sample):
    """`ablate --lape`: for the unablated model, a language's LAPE neurons and a random control, the stored mean
    next-token NLL of every language equals one-sentence forwards with those FFN values zeroed by hand (summed NLL
    of every predicted token over their number; the BOS is context); a control has the target's size per layer."""
    import json

    ckpt = checkpoint("llama", False)
    data = tmp_path / "d.csv"
    picked = sample.sample(60, seed=4)
    picked.write_csv(data)
    db = tmp_path / "w.duckdb"
    base = ["--db", db, "extract", ckpt, data, "--run", "ffn", "--site", "ffn", "--pooling", "active"]
    assert neurons(*base, "--layers", "all", "--quiet").exit_code == 0
    r = neurons("--db", db, "ablate", "--run", "ffn", "--lape", "--top-rate", "0.3", "--controls", "1", "--json")
    assert r.exit_code == 0, r.output
    matrix = json.loads(r.stdout)["matrix"]
    con = duckdb.connect(str(db), read_only=True)
    sets = con.execute("select set_index, kind, language, layers, neurons from deactivation_sets order by 1").fetchall()
    con.close()
    target = next(s for s in sets if s[1] == "language")
    control = next(s for s in sets if s[1] == "control" and s[2] == target[2])
    assert sorted(target[3]) == sorted(control[3])  # as many neurons in each layer

    model = AutoModelForCausalLM.from_pretrained(ckpt).eval()
    tok = AutoTokenizer.from_pretrained(ckpt)

    def mean_nll(layers, ids) -> dict:
        handles = []
        for layer in set(layers):
            chosen = [n for k, n in zip(layers, ids) if k == layer]
            handles.append(
                FFN["llama"](model, layer).register_forward_hook(
                    lambda _m, _i, out, chosen=chosen: out.index_fill(-1, torch.tensor(chosen), 0)
                )
            )
        sums = {}
        with torch.no_grad():
            for text, language in zip(picked["text"], picked["language"]):
                x = torch.tensor([tok(text)["input_ids"]])
                logp = torch.log_softmax(model(x).logits[0, :-1].double(), -1)
                nll = -logp[torch.arange(x.shape[1] - 1), x[0, 1:]]
                s, n = sums.get(language, (0.0, 0))
                sums[language] = (s + float(nll.sum()), n + int(nll.numel()))
        for h in handles:
            h.remove()
        return {language: s / n for language, (s, n) in sums.items()}

    baseline = mean_nll([], [])
    for kind, (_, _, language, layers, ids) in (("language", target), ("control", control)):
        expected = mean_nll(layers, ids)
        for row in matrix:
            if row["deactivated_language"] != language:
                continue
            evaluated = row["evaluated_language"]
            assert abs(row["baseline_nll"] - baseline[evaluated]) < 1e-5
            if kind == "language":
                assert abs(row["nll"] - expected[evaluated]) < 1e-5
                assert abs(row["delta"] - (expected[evaluated] - baseline[evaluated])) < 1e-5
            else:  # one control: its delta is the control mean
                assert abs(row["control_delta"] - (expected[evaluated] - baseline[evaluated])) < 1e-5
        if kind == "language":  # the zeroing is felt well above the tolerance (a random tiny model: small effects)
            assert max(abs(expected[k] - baseline[k]) for k in expected) > 1e-4

    assert_one_line_error(
        neurons("--db", db, "ablate", "--run", "ffn", "--lape", "--layer", "2"), "--lape chooses the neurons itself"
    )
    residual = ["--db", db, "extract", ckpt, data, "--run", "res", "--quiet"]
    assert neurons(*residual).exit_code == 0
    assert_one_line_error(neurons("--db", db, "ablate", "--run", "res", "--lape"), "--site ffn --pooling active")


def test_decoder_demo_runs_the_lape_study_end_to_end(tmp_path, neurons):
    """`neurons demo --decoder` (six epochs of training here): a causal LM saved, its FFN shares extracted, the
    deactivation stored and drawn in the report."""
    r = neurons("demo", "--decoder", "--out", tmp_path / "d", "--epochs", "6")
    assert r.exit_code == 0, r.output
    assert "held-out next-token NLL per language: ar " in r.output
    assert (tmp_path / "d" / "demo-decoder-report" / "figures" / "deactivation.png").is_file()
    assert "deactivation_matrix" in assert_report_figures_valid(tmp_path / "d" / "demo.duckdb", "decoder-ffn")
    con = duckdb.connect(str(tmp_path / "d" / "demo.duckdb"), read_only=True)
    assert con.execute("select count(distinct deactivated_language) from deactivation_matrix").fetchone()[0] >= 1
    counts = con.execute(
        "select layer, language, count(*) from language_specific_neurons() where run = 'decoder-ffn' group by all"
    ).fetchall()
    con.close()
    # the report's LAPE table: language-specific neurons per layer (rows) and language (columns), as the view has them
    table = pl.read_csv(tmp_path / "d" / "demo-decoder-report" / "tables" / "lape.csv")
    shown = {(r["layer"], lang): r[lang] for r in table.to_dicts() for lang in table.columns if lang != "layer"}
    assert {k: v for k, v in shown.items() if v} == {(layer, lang): n for layer, lang, n in counts}


def test_decoder_demo_trained_too_briefly_says_to_train_longer(tmp_path, neurons):
    """One epoch leaves the tiny LM without language-specific neurons: the demo, which has no --top-rate, says
    what helps (more epochs) in its last line instead of pointing at a flag it does not take."""
    r = neurons("demo", "--decoder", "--out", tmp_path / "d", "--epochs", "1")
    assert r.exit_code == 1 and "Traceback" not in r.output
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("neurons: after 1 epoch the tiny LM") and "--epochs 30" in last and "--top-rate" not in last


def test_steering_equals_hand_hooked_generation(tmp_path, neurons, checkpoint, sample):
    """`neurons steer`: the steered outputs equal greedy generation with the language's LAPE neurons set by hand
    to their mean FFN value over its tokens (BOS left out); unsteered outputs equal plain generation; each output's
    stored language is lingua's; the summary's shares are the stored outputs' shares."""
    import json

    from lingua import IsoCode639_1, LanguageDetectorBuilder

    from toolkit.capture.tinymodels import save_checkpoint

    loud = AutoModelForCausalLM.from_pretrained(checkpoint("llama", False))
    with torch.no_grad():  # a random tiny model's FFN barely moves its output: make it matter
        for block in loud.model.layers:
            block.mlp.down_proj.weight *= 40
    ckpt = save_checkpoint(loud, AutoTokenizer.from_pretrained(checkpoint("llama", False)), tmp_path / "loud")
    data = tmp_path / "d.csv"
    sample.write_csv(data)
    db = tmp_path / "w.duckdb"
    extract = ["--db", db, "extract", ckpt, data, "--run", "ffn", "--site", "ffn", "--pooling", "active"]
    assert neurons(*extract, "--layers", "all", "--quiet").exit_code == 0
    prompts = tmp_path / "p.txt"
    prompts.write_text("The\nDe trein\n\nIl\n", encoding="utf-8")
    r = neurons(
        "--db", db, "steer", "--run", "ffn", "--language", "nl", "--prompts", prompts, "--top-rate", "0.2",
        "--controls", "1", "--max-new-tokens", "6", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)["summary"]
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("select condition, prompt, output, identified from steering_outputs order by all").fetchall()
    lape = con.execute(
        "select layer, neuron from language_specific_neurons(top_rate := 0.2) where run = 'ffn' and language = 'nl'"
    ).fetchall()
    con.close()

    model = AutoModelForCausalLM.from_pretrained(ckpt).eval()
    tok = AutoTokenizer.from_pretrained(ckpt)
    sums, count, captured = {}, 0, {}
    handles = [
        FFN["llama"](model, k).register_forward_hook(lambda _m, _i, out, k=k, into=captured: into.__setitem__(k, out))
        for k in (1, 2, 3)
    ]
    with torch.no_grad():
        for text in sample.filter(sample["language"] == "nl")["text"]:
            model(torch.tensor([tok(text)["input_ids"]]))
            for k, out in captured.items():
                sums[k] = sums.get(k, 0) + out[0, 1:].double().sum(0)  # the BOS left out
            count += len(tok(text)["input_ids"]) - 1
    for h in handles:
        h.remove()

    def greedy(prompt: str, chosen) -> str:
        hs = []
        for layer in {k for k, _ in chosen}:
            index = torch.tensor([n for k, n in chosen if k == layer])
            values = (sums[layer] / count)[index].float()

            def fn(_m, _i, out, index=index, values=values):
                out[..., index] = values
                return out

            hs.append(FFN["llama"](model, layer).register_forward_hook(fn))
        ids = torch.tensor([tok(prompt)["input_ids"]])
        with torch.no_grad():
            new = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                                 pad_token_id=tok.pad_token_id)[0, ids.shape[1]:]  # fmt: skip
        for h in hs:
            h.remove()
        return tok.decode(new, skip_special_tokens=True)

    detector = LanguageDetectorBuilder.from_iso_codes_639_1(
        *[IsoCode639_1.from_str(c) for c in ("ar", "en", "ja", "nl", "sl")]
    ).build()
    for condition, prompt, output, identified in rows:
        if condition == "control":
            continue
        assert output == greedy(prompt, lape if condition == "steered" else [])
        found = detector.detect_language_of(output)
        assert identified == (found.iso_code_639_1.name.lower() if found else None)
    assert any(greedy(p, lape) != greedy(p, []) for p in ("The", "De trein", "Il"))  # the steering is felt
    for s in summary:
        mine = [r for r in rows if r[0] == s["condition"]]
        assert s["n_outputs"] == len(mine) == 3  # one control set: three outputs in each condition
        assert s["share_in_language"] == pytest.approx(sum(r[3] == "nl" for r in mine) / len(mine))
    assert_one_line_error(
        neurons("--db", db, "steer", "--run", "ffn", "--language", "xx", "--prompts", prompts), "no LAPE neurons"
    )


WRITE = {  # where each family's FFN output projection keeps neuron n's write vector, written out independently
    "llama": lambda m, layer, n: m.model.layers[layer - 1].mlp.down_proj.weight[:, n],
    "gpt2": lambda m, layer, n: m.transformer.h[layer - 1].mlp.c_proj.weight[n, :],  # Conv1D: (in, out)
    "opt": lambda m, layer, n: m.model.decoder.layers[layer - 1].fc2.weight[:, n],
}


@pytest.mark.parametrize("architecture", sorted(WRITE))
def test_logit_effects_are_the_unembedding_of_the_neurons_write(tmp_path, neurons, checkpoint, sample, architecture):
    """`neuron N --logits`: the tokens promoted and suppressed most are the extremes of W_U . W_down[:, n],
    computed here from the saved weights (GPT-2's Conv1D stores the projection transposed)."""
    ckpt = checkpoint(architecture, False)
    data = tmp_path / "d.csv"
    sample.write_csv(data)
    db = tmp_path / "w.duckdb"
    extract = ["--db", db, "extract", ckpt, data, "--run", "ffn", "--site", "ffn", "--pooling", "active", "--quiet"]
    assert neurons(*extract).exit_code == 0
    model = AutoModelForCausalLM.from_pretrained(ckpt).eval()
    r = neurons("--db", db, "neuron", "5", "--run", "ffn", "--layer", "2", "--logits", "--json")
    assert r.exit_code == 0, r.stderr
    got = pl.DataFrame(json.loads(r.stdout)["logit_effects"])
    with torch.no_grad():
        effect = (model.get_output_embeddings().weight @ WRITE[architecture](model, 2, 5)).numpy()
    order = np.argsort(-effect, kind="stable")
    promotes = got.filter(pl.col("direction") == "promotes").sort("rank")
    suppresses = got.filter(pl.col("direction") == "suppresses").sort("rank")
    np.testing.assert_allclose(promotes["effect"].to_numpy(), effect[order[:10]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(suppresses["effect"].to_numpy(), effect[order[::-1][:10]], rtol=1e-5, atol=1e-6)
    assert set(promotes["token_id"][:3]) <= set(order[:5].tolist())  # ties aside, the same tokens
    text = neurons("--db", db, "neuron", "5", "--run", "ffn", "--layer", "2", "--logits")
    assert "tokens it writes towards" in text.stdout and "promotes" in text.stdout
    stored = neurons("--db", db, "tokens", "--run", "ffn", "--layer", "2", "--sentences", "1")  # for the report
    assert stored.exit_code == 0 and "logit effects of every neuron" in stored.stdout, stored.stderr
    card = json.loads(neurons("--db", db, "neuron", "5", "--run", "ffn", "--layer", "2", "--json").stdout)
    kept = pl.DataFrame(card["neurons"]["5"]["logit_effects"], schema=["direction", "token", "effect"], orient="row")
    np.testing.assert_allclose(
        kept.filter(pl.col("direction") == "promotes")["effect"].to_numpy(), effect[order[:10]], rtol=1e-5, atol=1e-6
    )
    residual = neurons("--db", db, "extract", ckpt, data, "--run", "res", "--quiet")
    assert residual.exit_code == 0
    assert_one_line_error(neurons("--db", db, "neuron", "5", "--run", "res", "--logits"), "--site ffn")
