"""Tiny models built offline: a tokenizer trained on the given texts and a small randomly initialised
XLM-R, BERT or DistilBERT encoder, or a causal LM of any decoder family `neurons` reads (Llama, Mistral, Qwen2,
Qwen3, Gemma, Gemma 2, GPT-2, BLOOM, OPT, GPT-NeoX), saved as ordinary Hugging Face checkpoints.

They make the demo and the tests run without the hub. They are illustrative only: their numbers say
nothing about real models.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

ARCHITECTURES = ("xlm-roberta", "bert", "distilbert")
DECODERS = ("llama", "qwen2", "gemma", "gpt2")
MORE_DECODERS = ("mistral", "qwen3", "gemma2", "bloom", "opt", "gpt_neox")
"""The other decoder families, built as their tokenizers behave: Mistral, Gemma 2 and OPT add a BOS; Qwen3,
BLOOM and GPT-NeoX add none (GPT-NeoX, like GPT-2, has no pad token)."""
BOS_ADDING = ("llama", "gemma", "mistral", "gemma2", "opt")


def train_tokenizer(texts: list[str], architecture: str = "xlm-roberta", vocab_size: int = 1200, max_length: int = 128):
    """A BPE tokenizer trained on TEXTS with the architecture's special tokens, as a transformers tokenizer."""
    from transformers import PreTrainedTokenizerFast

    if architecture in DECODERS + MORE_DECODERS:
        return _decoder_tokenizer(texts, architecture, vocab_size, max_length)

    if architecture == "xlm-roberta":
        cls, sep, pad, unk, mask, extra = (
            "<s>",
            "</s>",
            "<pad>",
            "<unk>",
            "<mask>",
            {"bos_token": "<s>", "eos_token": "</s>"},
        )
        special = [cls, pad, sep, unk, mask]  # ids 0..4, as in XLM-R (pad = 1)
    else:
        cls, sep, pad, unk, mask, extra = "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", {}
        special = [pad, unk, cls, sep, mask]  # pad = 0, as in BERT
    tok = Tokenizer(models.BPE(unk_token=unk))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False)
    )
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        cls_token=cls,
        sep_token=sep,
        pad_token=pad,
        unk_token=unk,
        mask_token=mask,
        model_max_length=max_length,
        **extra,
    )


def _decoder_tokenizer(texts: list[str], architecture: str, vocab_size: int, max_length: int):
    """A decoder's tokenizer: Llama and Gemma add a BOS (<s>) and pad with <pad>; Qwen2 adds none and pads with
    <|endoftext|>; GPT-2 adds none and has no pad token at all."""
    from transformers import PreTrainedTokenizerFast

    bos, eos, unk, pad = "<s>", "</s>", "<unk>", "<pad>"
    byte_level = architecture in ("qwen2", "qwen3", "gpt2", "bloom", "opt", "gpt_neox")  # as theirs
    tok = Tokenizer(models.BPE(unk_token=None if byte_level else unk))
    tok.normalizer = normalizers.NFC() if byte_level else normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False) if byte_level else pre_tokenizers.Metaspace()
    tok.decoder = decoders.ByteLevel() if byte_level else decoders.Metaspace()
    alphabet = pre_tokenizers.ByteLevel.alphabet() if byte_level else []
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=[unk, bos, eos, pad], initial_alphabet=alphabet, show_progress=False
        ),
    )
    names = {"bos_token": bos, "eos_token": eos, "unk_token": unk}
    if architecture in BOS_ADDING:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, tok.token_to_id(bos))]
        )
        names["pad_token"] = pad
    elif architecture in ("qwen2", "qwen3"):
        names["pad_token"] = eos
    elif architecture == "bloom":
        names["pad_token"] = pad
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, **names)


def _head(labels: list[str] | None) -> dict:
    """The config fields of a sequence classifier over LABELS (none without labels)."""
    if not labels:
        return {}
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {l: i for i, l in enumerate(labels)},
    }


def _decoder_config(architecture: str, tokenizer, labels, hidden: int, layers: int, heads: int, max_length: int):
    from transformers import AutoConfig

    head = _head(labels)
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if architecture == "gpt2":
        return AutoConfig.for_model(
            "gpt2",
            vocab_size=len(tokenizer),
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            n_positions=max_length,
            **ids,
            **head,
        )
    if architecture == "bloom":  # ALiBi: no position embeddings
        return AutoConfig.for_model(
            "bloom", vocab_size=len(tokenizer), hidden_size=hidden, n_layer=layers, n_head=heads, **ids, **head
        )
    if architecture == "opt":
        return AutoConfig.for_model(
            "opt",
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            word_embed_proj_dim=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            ffn_dim=hidden * 2,
            max_position_embeddings=max_length,
            **ids,
            **head,
        )
    sizes = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        intermediate_size=hidden * 2,
        max_position_embeddings=max_length,
    )
    if architecture in ("gemma", "gemma2", "qwen3"):
        sizes["head_dim"] = hidden // heads
    if architecture == "gpt_neox":
        sizes.pop("num_key_value_heads")
    return AutoConfig.for_model(architecture, **sizes, **ids, **head)


def tiny_config(
    architecture: str,
    tokenizer,
    labels: list[str] | None,
    hidden: int = 64,
    layers: int = 4,
    heads: int = 4,
    max_length: int = 128,
):
    """A small config of ARCHITECTURE; with LABELS, a sequence classifier whose id2label is LABELS."""
    from transformers import BertConfig, DistilBertConfig, XLMRobertaConfig

    if architecture in DECODERS + MORE_DECODERS:
        return _decoder_config(architecture, tokenizer, labels, hidden, layers, heads, max_length)

    head = _head(labels)
    common = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id, **head}
    if architecture == "xlm-roberta":
        return XLMRobertaConfig(
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=hidden * 2,
            max_position_embeddings=max_length + 2,
            type_vocab_size=1,
            bos_token_id=0,
            eos_token_id=2,
            **common,
        )
    if architecture == "bert":
        return BertConfig(
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=hidden * 2,
            max_position_embeddings=max_length,
            **common,
        )
    if architecture == "distilbert":
        return DistilBertConfig(
            dim=hidden,
            n_layers=layers,
            n_heads=heads,
            hidden_dim=hidden * 2,
            max_position_embeddings=max_length,
            **common,
        )
    raise ValueError(f"unknown architecture {architecture}; use one of {ARCHITECTURES}")


def build_model(architecture: str, tokenizer, labels: list[str] | None, seed: int = 0, **sizes):
    """A randomly initialised model (classifier when LABELS are given), deterministic for SEED."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    torch.manual_seed(seed)
    from transformers import AutoModelForCausalLM

    config = tiny_config(architecture, tokenizer, labels, **sizes)
    cls = (
        AutoModelForSequenceClassification
        if labels
        else AutoModelForCausalLM
        if architecture in DECODERS + MORE_DECODERS
        else AutoModel
    )
    return cls.from_config(config).eval()


def save_checkpoint(model, tokenizer, out: str | Path) -> Path:
    """save_pretrained of model and tokenizer into OUT, as a user's checkpoint directory."""
    from toolkit.capture.models import quiet_transformers

    quiet_transformers()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
