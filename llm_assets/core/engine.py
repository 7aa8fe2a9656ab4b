"""The decode engine: one interface over the torch reference and every ONNX variant.

The engine that is benchmarked is the engine that is deployed. It never calls
transformers' or optimum's `generate`: a plain loop that keeps the KV cache
between steps (numpy arrays for ONNX Runtime, a DynamicCache for torch) was 3x
faster on the same model. The ONNX path imports neither torch nor transformers:
the tokenizer is `tokenizers` + the chat template rendered with jinja2, so a
fresh process reaches its first token in about the time of session creation.

    engine = load_engine(variant_dir)                # timed, verified against MANIFEST.json
    out = engine.chat([{"role": "user", "content": "Hi"}], SamplingParams(max_new_tokens=32),
                      on_token=lambda tid, piece: print(piece, end=""))
"""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from llm_assets.core.hashing import sha256_file, verify_files

VARIANT_FILE = "variant.json"
MANIFEST_FILE = "MANIFEST.json"
ONNX_FILE = "model.onnx"

# Called once per generated token with (token id, the text it completes, possibly "");
# and once more with id -1 if the output ends inside a multi-byte character.
OnToken = Callable[[int, str], None]


class EngineError(RuntimeError):
    pass


class ContextLengthError(ValueError):
    """Prompt plus max_new_tokens does not fit the model's context window."""


@dataclass
class SamplingParams:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None
    stop_token_ids: list[int] | None = None  # None = the model's EOS tokens

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass
class Generation:
    prompt_tokens: int
    token_ids: list[int]
    text: str
    finish_reason: str  # "stop" | "length"
    ttft_s: float  # start of the call to the first generated token
    total_s: float
    token_times_s: list[float] = field(default_factory=list)  # since the start of the call, one per token

    @property
    def output_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens after the first, per second of decoding (prefill excluded)."""
        if len(self.token_times_s) < 2:
            return float("nan")
        return (len(self.token_times_s) - 1) / (self.token_times_s[-1] - self.token_times_s[0])


@dataclass
class LoadInfo:
    verify_s: float = 0.0
    tokenizer_s: float = 0.0
    model_s: float = 0.0
    optimized_cache: str = ""  # "created" | "reused" | "" (torch)

    @property
    def total_s(self) -> float:
        return self.verify_s + self.tokenizer_s + self.model_s


class ChatTokenizer:
    """`tokenizers` + the model's chat template (jinja2, as transformers renders it)."""

    def __init__(self, model_dir: Path):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        cfg_path = model_dir / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        template_file = model_dir / "chat_template.jinja"
        self.chat_template = template_file.read_text() if template_file.is_file() else cfg.get("chat_template")
        self.specials = {k: _token_str(cfg.get(k)) for k in ("bos_token", "eos_token", "pad_token")}
        self._template = None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def token_id(self, token: str | None) -> int | None:
        return self.tok.token_to_id(token) if token else None

    def render_chat(self, messages: list[dict]) -> str:
        if not self.chat_template:
            raise EngineError("this model has no chat template; use a plain completion")
        if self._template is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

            def raise_exception(msg):
                raise EngineError(f"chat template: {msg}")

            env.globals["raise_exception"] = raise_exception
            self._template = env.from_string(self.chat_template)
        return self._template.render(messages=messages, add_generation_prompt=True, **self.specials)

    def encode_chat(self, messages: list[dict]) -> list[int]:
        return self.encode(self.render_chat(messages), add_special_tokens=False)


def _token_str(v) -> str | None:
    return v.get("content") if isinstance(v, dict) else v


class Engine:
    """Shared decode loop. Subclasses provide `_new_state()` and `_forward(ids, state)`."""

    kind = "?"

    def __init__(self, model_dir: Path, tokenizer: ChatTokenizer, config: dict, threads: int, load: LoadInfo):
        self.model_dir, self.tokenizer, self.config, self.threads, self.load_info = (
            model_dir, tokenizer, config, threads, load)
        self.context_length = int(config.get("max_position_embeddings") or 2048)
        self.vocab_size = int(config["vocab_size"])
        self.eos_token_ids = _eos_ids(model_dir, config, tokenizer)

    # ---- subclass hooks --------------------------------------------------
    def _new_state(self):
        raise NotImplementedError

    def _forward(self, ids: list[int], state) -> tuple[np.ndarray, object]:
        """Run `ids` after what `state` holds; return logits [len(ids), vocab] float32 and the new state."""
        raise NotImplementedError

    # ---- public API -------------------------------------------------------
    def encode_chat(self, messages: list[dict]) -> list[int]:
        return self.tokenizer.encode_chat(messages)

    def logits(self, ids: list[int]) -> np.ndarray:
        """Teacher-forced next-token logits for every position, in one forward pass."""
        return self._forward(list(ids), self._new_state())[0]

    def logits_stepwise(self, prompt: list[int], continuation: list[int]) -> np.ndarray:
        """Prefill `prompt`, then feed `continuation` one token at a time through the KV cache.

        Returns [len(continuation) + 1, vocab]: the logits after the prompt and after each fed token.
        """
        out, state = self._forward(list(prompt), self._new_state())
        rows = [out[-1]]
        for t in continuation:
            out, state = self._forward([int(t)], state)
            rows.append(out[-1])
        return np.stack(rows)

    def generate(self, prompt_ids: list[int], params: SamplingParams | None = None,
                 on_token: OnToken | None = None) -> Generation:
        params = params or SamplingParams()
        prompt_ids = [int(t) for t in prompt_ids]
        if not prompt_ids:
            raise ValueError("prompt is empty")
        if len(prompt_ids) + params.max_new_tokens > self.context_length:
            raise ContextLengthError(
                f"prompt ({len(prompt_ids)} tokens) + max_new_tokens ({params.max_new_tokens}) exceeds the "
                f"context window of {self.context_length} tokens"
            )
        stops = set(self.eos_token_ids if params.stop_token_ids is None else params.stop_token_ids)
        rng = np.random.default_rng(params.seed)
        t0 = time.perf_counter()
        logits, state = self._forward(prompt_ids, self._new_state())
        last = logits[-1]
        tokens: list[int] = []
        times: list[float] = []
        text = ""
        finish = "length"
        while len(tokens) < params.max_new_tokens:
            tok = _pick(last, params, rng)
            if tok in stops:
                finish = "stop"
                break
            tokens.append(tok)
            times.append(time.perf_counter() - t0)
            if on_token is not None:
                new_text = self.tokenizer.decode(tokens)
                # Every token is reported; an incomplete UTF-8 sequence is held back (piece "")
                # until a later token completes it.
                if new_text.endswith("\ufffd"):
                    on_token(tok, "")
                else:
                    on_token(tok, new_text[len(text):])
                    text = new_text
            if len(tokens) == params.max_new_tokens:
                break
            logits, state = self._forward([tok], state)
            last = logits[-1]
        final = self.tokenizer.decode(tokens)
        if on_token is not None and final != text and final.startswith(text):
            on_token(-1, final[len(text):])  # the output ended mid-character: flush it (no new token)
        total = time.perf_counter() - t0
        return Generation(prompt_tokens=len(prompt_ids), token_ids=tokens, text=final, finish_reason=finish,
                          ttft_s=times[0] if times else total, total_s=total, token_times_s=times)

    def chat(self, messages: list[dict], params: SamplingParams | None = None,
             on_token: OnToken | None = None) -> Generation:
        return self.generate(self.encode_chat(messages), params, on_token)

    def complete(self, prompt: str, params: SamplingParams | None = None,
                 on_token: OnToken | None = None) -> Generation:
        return self.generate(self.tokenizer.encode(prompt), params, on_token)


def _pick(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    if params.temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / params.temperature
    z -= z.max()
    p = np.exp(z)
    p /= p.sum()
    if params.top_p < 1.0:
        order = np.argsort(-p)
        cum = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cum, params.top_p)) + 1]
        mask = np.zeros_like(p)
        mask[keep] = p[keep]
        p = mask / mask.sum()
    return int(rng.choice(len(p), p=p))


def _eos_ids(model_dir: Path, config: dict, tokenizer: ChatTokenizer) -> list[int]:
    ids: list[int] = []
    gen = model_dir / "generation_config.json"
    sources = [json.loads(gen.read_text()).get("eos_token_id")] if gen.is_file() else []
    sources += [config.get("eos_token_id"), tokenizer.token_id(tokenizer.specials.get("eos_token"))]
    for v in sources:
        for x in v if isinstance(v, list) else [v]:
            if x is not None and int(x) not in ids:
                ids.append(int(x))
    return ids


# ---- torch reference ------------------------------------------------------------
class TorchEngine(Engine):
    kind = "torch"

    def __init__(self, model_dir: Path, tokenizer: ChatTokenizer, config: dict, threads: int, load: LoadInfo):
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        t = time.perf_counter()
        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        load.model_s = time.perf_counter() - t
        super().__init__(model_dir, tokenizer, config, threads, load)

    def _new_state(self):
        from transformers import DynamicCache

        return DynamicCache()

    def _forward(self, ids, state):
        with self.torch.inference_mode():
            out = self.model(input_ids=self.torch.tensor([ids]), past_key_values=state, use_cache=True)
        return out.logits[0].float().numpy(), out.past_key_values


# ---- ONNX Runtime ---------------------------------------------------------------
_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}


def optimized_session(model_path: Path, threads: int, level: str, cache_dir: Path, cache_key: str):
    """An InferenceSession whose graph optimization ran once and was cached to disk.

    The first load optimizes at `level` and saves the result (atomically) under `cache_dir`;
    later loads read the optimized file with optimization off, skipping most of session creation.
    Returns (session, "created" | "reused").
    """
    import onnxruntime as ort

    def options(opt_level: str):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[opt_level])
        so.log_severity_level = 3
        return so

    if level == "disabled":
        return ort.InferenceSession(str(model_path), options("disabled"), providers=["CPUExecutionProvider"]), ""
    cached = cache_dir / f"{cache_key}-ort{ort.__version__}-{level}.onnx"
    if cached.is_file():
        try:
            return ort.InferenceSession(str(cached), options("disabled"), providers=["CPUExecutionProvider"]), "reused"
        except Exception:  # a cache from another machine or ORT build: rebuild it
            cached.unlink(missing_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.stem}-{uuid.uuid4().hex[:8]}.onnx")
    so = options(level)
    so.optimized_model_filepath = str(tmp)
    session = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    if tmp.is_file():
        os.replace(tmp, cached)
    return session, "created"


class OnnxEngine(Engine):
    kind = "onnx"

    def __init__(self, model_dir: Path, tokenizer: ChatTokenizer, config: dict, threads: int, load: LoadInfo,
                 level: str, cache_dir: Path, cache_key: str):
        t = time.perf_counter()
        self.session, load.optimized_cache = optimized_session(model_dir / ONNX_FILE, threads, level, cache_dir,
                                                               cache_key)
        load.model_s = time.perf_counter() - t
        super().__init__(model_dir, tokenizer, config, threads, load)
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.kv_names = sorted((n for n in inputs if n.startswith("past_key_values.")), key=_kv_order)
        self.present_names = [n.replace("past_key_values.", "present.") for n in self.kv_names]
        self.output_names = ["logits", *self.present_names]
        self.needs_position_ids = "position_ids" in inputs
        self.kv_dtype = np.float16 if "float16" in inputs[self.kv_names[0]].type else np.float32
        shape = inputs[self.kv_names[0]].shape
        heads = shape[1] if isinstance(shape[1], int) else int(config.get("num_key_value_heads")
                                                                or config["num_attention_heads"])
        head_dim = shape[3] if isinstance(shape[3], int) else int(
            config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])
        self.kv_shape = (1, heads, 0, head_dim)

    def _new_state(self):
        return [np.zeros(self.kv_shape, dtype=self.kv_dtype) for _ in self.kv_names]

    def _forward(self, ids, state):
        past = state[0].shape[2]
        n = len(ids)
        feed = {
            "input_ids": np.asarray([ids], dtype=np.int64),
            "attention_mask": np.ones((1, past + n), dtype=np.int64),
        }
        if self.needs_position_ids:
            feed["position_ids"] = np.arange(past, past + n, dtype=np.int64)[None, :]
        feed.update(zip(self.kv_names, state))
        outs = self.session.run(self.output_names, feed)
        return outs[0][0].astype(np.float32, copy=False), outs[1:]


def _kv_order(name: str):
    _, layer, kind = name.split(".")
    return int(layer), kind


# ---- loading ----------------------------------------------------------------------
def read_variant(model_dir: str | Path) -> dict:
    p = Path(model_dir) / VARIANT_FILE
    return json.loads(p.read_text()) if p.is_file() else {}


def load_engine(model_dir: str | Path, threads: int | None = None, verify: bool = True,
                cache_dir: str | Path | None = None) -> Engine:
    """Load a variant directory (or a plain HF/ONNX model directory) into the right engine.

    With `verify`, every file listed in the directory's MANIFEST.json is checked against its
    sha256 first: a corrupted file is an IntegrityError naming it, not a crash inside ONNX Runtime.
    `threads` defaults to the variant's measured best (its `variant.json`), else 1.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise EngineError(f"model directory {model_dir} does not exist")
    load = LoadInfo()
    manifest_path = model_dir / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    if verify and manifest:
        t = time.perf_counter()
        verify_files(model_dir, {rel: m["sha256"] for rel, m in manifest["files"].items()})
        load.verify_s = time.perf_counter() - t
    variant = read_variant(model_dir)
    threads = int(threads or variant.get("threads") or 1)
    t = time.perf_counter()
    tokenizer = ChatTokenizer(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    load.tokenizer_s = time.perf_counter() - t
    if (model_dir / ONNX_FILE).is_file():
        from llm_assets.core.settings import llmops_home

        cache = Path(cache_dir) if cache_dir else llmops_home() / "cache" / "ort"
        onnx_meta = (manifest or {}).get("files", {}).get(ONNX_FILE)
        key = onnx_meta["sha256"] if onnx_meta else sha256_file(model_dir / ONNX_FILE)
        return OnnxEngine(model_dir, tokenizer, config, threads, load, level=variant.get("optimization", "all"),
                          cache_dir=cache, cache_key=key[:24])
    if (model_dir / "model.safetensors").is_file() or list(model_dir.glob("*.safetensors")):
        return TorchEngine(model_dir, tokenizer, config, threads, load)
    raise EngineError(f"{model_dir} holds neither {ONNX_FILE} nor safetensors weights")
