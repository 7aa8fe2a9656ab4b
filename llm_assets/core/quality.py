"""Quality of a variant against the reference variant, on the corpus' reference answers.

Teacher forcing: the chat-formatted prompt followed by the reference answer is scored in one
forward pass by both engines; over the answer positions we compute
- perplexity of the reference answer under the variant (and under the reference, for the increase),
- mean KL(reference || variant) of the next-token distributions, in nats,
- top-1 agreement: how often both put the same token first (%),
and, decoding freely, the greedy-continuation exact-match rate (% of prompts whose first
`match_tokens` greedy tokens are identical to the reference's).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llm_assets.core.engine import Engine, SamplingParams


class QualityBudget(BaseModel):
    """How much quality a variant may lose against the reference and still be served."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_kl: float = Field(default=0.5, ge=0, description="Max mean KL(reference || variant), nats per token.")
    max_ppl_increase_pct: float = Field(default=35.0, ge=0, description="Max perplexity increase, %.")
    min_top1_agreement_pct: float = Field(default=65.0, ge=0, le=100, description="Min top-1 agreement, %.")

    def failures(self, q: dict) -> list[str]:
        """Each metric outside the budget, named with its value and its bound."""
        out = []
        if not q["kl_mean"] <= self.max_kl:
            out.append(f"kl_mean {q['kl_mean']:.3f} > max_kl {self.max_kl}")
        if not q["ppl_increase_pct"] <= self.max_ppl_increase_pct:
            out.append(f"ppl_increase_pct {q['ppl_increase_pct']:.1f} > max_ppl_increase_pct "
                       f"{self.max_ppl_increase_pct}")
        if not q["top1_agreement_pct"] >= self.min_top1_agreement_pct:
            out.append(f"top1_agreement_pct {q['top1_agreement_pct']:.1f} < min_top1_agreement_pct "
                       f"{self.min_top1_agreement_pct}")
        return out


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def teacher_forced_ids(engine: Engine, prompt: str, answer: str) -> tuple[list[int], int]:
    """(prompt + answer token ids, index of the first answer token)."""
    p = engine.encode_chat([{"role": "user", "content": prompt}])
    a = engine.tokenizer.encode(answer, add_special_tokens=False)
    return p + a, len(p)


def compare(reference: Engine, variant: Engine, samples: list[tuple[str, str]], match_tokens: int = 16,
            progress: Callable[[int, int], None] | None = None) -> dict:
    """Quality metrics of `variant` against `reference` over (prompt, reference answer) samples."""
    nll_ref, nll_var, kls, agree = [], [], [], []
    exact = 0
    greedy = SamplingParams(max_new_tokens=match_tokens)
    for i, (prompt, answer) in enumerate(samples):
        ids, start = teacher_forced_ids(reference, prompt, answer)
        targets = np.asarray(ids[start:])
        lr = _log_softmax(reference.logits(ids)[start - 1:-1])
        lv = lr if variant is reference else _log_softmax(variant.logits(ids)[start - 1:-1])
        rows = np.arange(len(targets))
        nll_ref.extend(-lr[rows, targets])
        nll_var.extend(-lv[rows, targets])
        kls.extend((np.exp(lr) * (lr - lv)).sum(-1))
        agree.extend(lr.argmax(-1) == lv.argmax(-1))
        prompt_ids = ids[:start]
        ref_tokens = reference.generate(prompt_ids, greedy).token_ids
        exact += variant is reference or ref_tokens == variant.generate(prompt_ids, greedy).token_ids
        if progress:
            progress(i + 1, len(samples))
    ppl_ref, ppl_var = float(np.exp(np.mean(nll_ref))), float(np.exp(np.mean(nll_var)))
    return {
        "samples": len(samples),
        "scored_tokens": len(nll_var),
        "perplexity": ppl_var,
        "reference_perplexity": ppl_ref,
        "ppl_increase_pct": (ppl_var / ppl_ref - 1) * 100,
        "kl_mean": max(float(np.mean(kls)), 0.0),
        "top1_agreement_pct": float(np.mean(agree)) * 100,
        "greedy_exact_match_pct": exact / len(samples) * 100,
    }
