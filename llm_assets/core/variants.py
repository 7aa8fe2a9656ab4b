"""The variant catalogue: which compressed variants exist and how each is made.

Read from `llm_assets/variants.yaml` (or `$LLMOPS_VARIANTS`) when the definitions load,
so the variant list is the partition list and a new variant needs no code change.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from llm_assets.core.quality import QualityBudget

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "variants.yaml"


class VariantError(ValueError):
    pass


class VariantSpec(BaseModel):
    """How one variant is made from the base snapshot."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["torch", "onnx"]
    quantization: Literal["none", "dynamic_int8", "weight_only"] = "none"
    bits: Literal[4, 8] = 4
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int | None = None
    per_channel: bool = False
    reduce_range: bool = False
    untie_lm_head: bool = False
    optimization: Literal["disabled", "basic", "extended", "all"] = "all"

    @model_validator(mode="after")
    def _consistent(self):
        if self.kind == "torch" and (self.quantization != "none" or self.untie_lm_head):
            raise ValueError("a torch variant is the unmodified reference: no quantization or untie_lm_head")
        if self.quantization == "weight_only" and (self.block_size < 16 or self.block_size & (self.block_size - 1)):
            raise ValueError(f"block_size must be a power of two >= 16, got {self.block_size}")
        return self

    @property
    def is_onnx(self) -> bool:
        return self.kind == "onnx"

    def options_digest(self) -> str:
        """Identifies the recipe: same base + same digest = same variant, so it can be reused."""
        body = json.dumps(self.model_dump(exclude={"name"}), sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: str
    variants: dict[str, VariantSpec]
    quality_budget: QualityBudget = QualityBudget()

    def get(self, name: str) -> VariantSpec:
        if name not in self.variants:
            raise VariantError(f"variant {name!r} unknown; known: {', '.join(self.variants)}")
        return self.variants[name]

    @property
    def names(self) -> list[str]:
        return list(self.variants)


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    path = Path(path or os.environ.get("LLMOPS_VARIANTS") or DEFAULT_FILE)
    if not path.is_file():
        raise VariantError(f"variant file {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    variants = {}
    known = sorted(VariantSpec.model_fields)
    for name, opts in (raw.get("variants") or {}).items():
        try:
            variants[name] = VariantSpec(name=name, **(opts or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"unknown option {'.'.join(map(str, e['loc']))!r} (known: {', '.join(k for k in known if k != 'name')})"
                if e["type"] == "extra_forbidden" else f"{'.'.join(map(str, e['loc'])) or 'variant'}: {e['msg']}"
                for e in exc.errors()
            )
            raise VariantError(f"variant {name!r} in {path}: {problems}") from None
    if not variants:
        raise VariantError(f"{path} defines no variants")
    reference = raw.get("reference", "")
    if reference not in variants:
        raise VariantError(f"reference variant {reference!r} in {path} is not one of: {', '.join(variants)}")
    try:
        budget = QualityBudget(**(raw.get("quality_budget") or {}))
    except ValidationError as exc:
        raise VariantError(f"quality_budget in {path}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']} "
                           f"(known: {', '.join(QualityBudget.model_fields)})") from None
    return Catalogue(reference=reference, variants=variants, quality_budget=budget)


if __name__ == "__main__":  # `python -m llm_assets.core.variants` prints the names (the Makefile loops on them)
    print(" ".join(load_catalogue().names))
