"""Loading a user's encoder checkpoint and choosing its layers.

A checkpoint directory is loaded with `from_pretrained`, exactly as a fine-tuned model is shipped. A hub
id works when the hub is reachable (or the model is in the local cache); offline, the user is told to
pass a directory. Layer numbers follow `hidden_states`: 0 is the embedding output, k the output of block k.
"""

from __future__ import annotations

import functools
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from toolkit.capture import hooks
from toolkit.capture.options import DEVICE_MAPS
from toolkit.errors import UserError, first_line

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
    "vocab.json",
)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LoadedModel:
    """A model ready for inference with its tokenizer and what extraction needs to know of it."""

    model: nn.Module
    tokenizer: object
    reference: str  # what the user passed (directory resolved to an absolute path)
    model_type: str
    n_layers: int  # transformer blocks; hidden_states has n_layers + 1 entries
    hidden_size: int
    class_names: list[str] | None  # id2label in id order, when the model has a classification head
    device: torch.device
    max_length: int  # the longest input the model accepts
    decoder: bool = False  # a decoder family of `hooks.FAMILIES`
    skip_bos: bool = False  # a decoder whose tokenizer adds a BOS: it is left out of pooling and token counts


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def resolve_reference(ref: str) -> tuple[str, bool]:
    """(reference to load, is_local_dir). Fails clearly for a missing path or a directory without weights."""
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"model {ref} is a file; pass the checkpoint directory that holds config.json")
        if not (path / "config.json").is_file():
            raise UserError(f"model directory {ref} has no config.json; pass a Hugging Face checkpoint directory")
        if not any((path / w).is_file() for w in WEIGHT_FILES):
            raise UserError(
                f"model directory {ref} has no weights ({' or '.join(WEIGHT_FILES[::2])}); "
                "save the model with save_pretrained"
            )
        if not any((path / t).is_file() for t in TOKENIZER_FILES):
            raise UserError(
                f"model directory {ref} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); save it with "
                "tokenizer.save_pretrained into the same directory"
            )
        return str(path.resolve()), True
    if not HUB_ID.match(ref):
        raise UserError(f"model path {ref} does not exist; pass a checkpoint directory or a hub id")
    return ref, False


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"} or os.environ.get(
        "TRANSFORMERS_OFFLINE", ""
    ).lower() in {"1", "true", "yes"}


def quiet_transformers() -> None:
    """No weight-loading progress bars or advisory logs from transformers: our own bar and summary say it."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub (HF_ENDPOINT) answers a TCP connection within TIMEOUT seconds."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_config(ref: str):
    """The model's config (cheap: no weights). A hub id is looked up in the local cache first, and fetched
    only when the hub is reachable, so an offline machine gets one clear line at once, not retries."""
    from transformers import AutoConfig

    reference, local = resolve_reference(ref)
    offline = f"model '{ref}' is not a local directory and could not be fetched from the Hugging Face hub"
    try:
        return AutoConfig.from_pretrained(reference, local_files_only=True), reference
    except (OSError, ValueError) as exc:
        if local:
            raise UserError(f"model directory {ref}: cannot read config.json ({first_line(exc)})") from None
    if _offline() or not hub_reachable():
        raise UserError(f"{offline} (offline); download it where you have network and pass its directory")
    try:
        return AutoConfig.from_pretrained(reference), reference
    except (OSError, ValueError):
        raise UserError(f"{offline} (unknown id?); check the id, or pass a checkpoint directory") from None


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return torch.device(device)


def has_classifier(config) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))


def load_model(
    ref: str,
    device: str = "auto",
    dtype: str = "float32",
    classifier: bool | None = None,
    causal_lm: bool = False,
    device_map: str | None = None,
) -> LoadedModel:
    """Load tokenizer and model from a checkpoint; a sequence classifier keeps its head unless CLASSIFIER=False;
    CAUSAL_LM: with its language-modelling head (next-token logits), for a causal LM. DEVICE_MAP ('auto', ...):
    accelerate spreads the blocks over every GPU (then CPU memory) as they fit, loading them in DTYPE straight
    away, for a checkpoint larger than one device; inputs go to the device of the embeddings."""
    from transformers import (
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    quiet_transformers()

    config, reference = load_config(ref)
    local = Path(reference).is_dir() or _offline() or not hub_reachable()
    with_head = has_classifier(config) if classifier is None else classifier and has_classifier(config)
    dev = pick_device(device)
    if dtype not in DTYPES:
        raise UserError(f"unknown --dtype {dtype}; use one of {', '.join(DTYPES)}")
    with loading(ref):
        tokenizer = AutoTokenizer.from_pretrained(reference, local_files_only=local)
        cls = AutoModelForCausalLM if causal_lm else AutoModelForSequenceClassification if with_head else AutoModel
        if causal_lm:
            with_head = False
        if device_map is not None:
            model = cls.from_pretrained(
                reference, local_files_only=local, device_map=_device_map(device_map), **_dtype_argument(dtype)
            )
        else:
            model = cls.from_pretrained(reference, local_files_only=local)
    vocab = getattr(config, "vocab_size", None)
    if vocab and len(tokenizer) > int(vocab):
        raise UserError(
            f"model {ref}: its tokenizer has {len(tokenizer)} tokens but the model's embeddings hold "
            f"{vocab}; the tokenizer belongs to another model"
        )
    if device_map is None:
        model = model.to(device=dev, dtype=DTYPES[dtype]).eval()
    else:
        model = model.eval()
        dev = model.get_input_embeddings().weight.device  # where the inputs go; the blocks move them on
    n_layers = int(config.num_hidden_layers)
    decoder = hooks.is_decoder(model)
    if decoder and with_head and model.config.pad_token_id is None:
        raise UserError(
            f"model {ref}: a decoder classifier finds each sentence's last token by its pad token, and this one has "
            "none; set pad_token_id in its config.json, or pass --no-predictions"
        )
    bos = getattr(tokenizer, "bos_token_id", None)
    adds_bos = bos is not None and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        reference=reference,
        model_type=config.model_type,
        n_layers=n_layers,
        hidden_size=int(config.hidden_size if hasattr(config, "hidden_size") else config.dim),
        class_names=[config.id2label[i] for i in range(len(config.id2label))] if with_head else None,
        device=dev,
        max_length=input_limit(config, tokenizer),
        decoder=decoder,
        skip_bos=decoder and adds_bos,
    )


def _dtype_argument(dtype: str) -> dict:
    """from_pretrained's dtype keyword: `dtype` from transformers 4.56 on, `torch_dtype` before."""
    import transformers
    from packaging.version import Version

    key = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    return {key: DTYPES[dtype]}


def _device_map(name: str) -> str:
    """NAME checked, with accelerate present (it places the blocks)."""
    if name not in DEVICE_MAPS:
        raise UserError(f"unknown --device-map {name}; use one of {', '.join(DEVICE_MAPS)}")
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise UserError("--device-map needs accelerate: pip install 'accelerate>=1.0,<2'") from None
    return name


def input_limit(config, tokenizer) -> int:
    """The longest input (in tokens) that both the model's positions and its tokenizer accept."""
    limit = getattr(config, "max_position_embeddings", 512) or 512
    if config.model_type in {"xlm-roberta", "roberta", "camembert"}:
        limit -= 2  # positions start after the padding index
    return int(min(limit, getattr(tokenizer, "model_max_length", None) or limit))


def load_tokenizer(ref: str):
    """The checkpoint's tokenizer alone (no weights): what a check of settings needs."""
    from transformers import AutoTokenizer

    quiet_transformers()
    config, reference = load_config(ref)
    local = Path(reference).is_dir() or _offline() or not hub_reachable()
    with loading(ref):
        return config, reference, AutoTokenizer.from_pretrained(reference, local_files_only=local)


@contextmanager
def loading(ref: str) -> Iterator[None]:
    """Turn any failure of `from_pretrained` inside the block into one line: a damaged checkpoint (a truncated
    safetensors file, a corrupt pickle, broken JSON) fails in many ways, none of them a bug of ours."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        raise UserError(
            f"cannot load model {ref}: {type(exc).__name__}: {first_line(exc)}; is the checkpoint complete?"
        ) from None


def parse_layers(spec: str, n_layers: int, first: int = 0) -> list[int]:
    """'11', '6,11', '-2' (python-style index from the end) or 'all' -> sorted layer numbers in FIRST..n_layers:
    hidden_states indices from 0 (the embeddings), or from 1 for the blocks' feed-forward activations."""
    spec = spec.strip().lower()
    if spec == "all":
        return list(range(first, n_layers + 1))
    out: set[int] = set()
    for part in spec.split(","):
        try:
            k = int(part)
        except ValueError:
            raise UserError(
                f"--layers {spec!r}: '{part}' is not a layer number; use e.g. 11, 6,11, -2 or all"
            ) from None
        idx = k + n_layers + 1 if k < 0 else k
        if not first <= idx <= n_layers:
            what = (
                f"{first}..{n_layers}: 0 is the embeddings, {n_layers} the last block"
                if first == 0
                else f"{first}..{n_layers}: the feed-forward activations of blocks 1..{n_layers}"
            )
            raise UserError(
                f"--layers {spec!r}: layer {k} is out of range for this model ({what}; negatives count from the end)"
            )
        out.add(idx)
    return sorted(out)
