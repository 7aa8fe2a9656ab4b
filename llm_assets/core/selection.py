"""Pick the champion among benchmarked variants: the quality gate first, then SLOs, then an objective."""
from __future__ import annotations

import pandas as pd
from pydantic import BaseModel, Field


class SLO(BaseModel):
    max_ttft_p95_s: float = Field(default=2.0, gt=0, description="p95 time to first token, seconds.")
    min_decode_tokens_per_s: float = Field(default=5.0, ge=0, description="Mean decode tokens/s per request.")
    max_kl: float | None = Field(default=None, ge=0, description="Stricter KL bound than the gate, if any.")


OBJECTIVES = {
    # column, ascending
    "latency": ("e2e_p95_s", True),
    "cost": ("cost_per_1m_tokens", True),
}


def rank_candidates(results: pd.DataFrame, slo: SLO, objective: str = "latency") -> pd.DataFrame:
    """Every variant with `eligible` and the reason it was kept or rejected, best first.

    `objective` is `cost` when a cost column exists, else falls back to `latency` (p95 end-to-end).
    """
    if results.empty:
        return results.assign(eligible=[], reason=[])
    col, asc = OBJECTIVES["cost" if objective == "cost" and "cost_per_1m_tokens" in results else "latency"]
    rows = []
    for _, r in results.iterrows():
        reasons = []
        if not bool(r.get("gate_passed", False)):
            reasons.append(f"failed the quality gate: {r.get('gate_failures') or 'see benchmark_results checks'}")
        if r["ttft_p95_s"] > slo.max_ttft_p95_s:
            reasons.append(f"ttft_p95 {r['ttft_p95_s']:.3f}s > SLO {slo.max_ttft_p95_s}s")
        if r["decode_tokens_per_s"] < slo.min_decode_tokens_per_s:
            reasons.append(f"decode {r['decode_tokens_per_s']:.1f} tok/s < SLO {slo.min_decode_tokens_per_s}")
        if slo.max_kl is not None and r["kl_mean"] > slo.max_kl:
            reasons.append(f"kl_mean {r['kl_mean']:.3f} > SLO {slo.max_kl}")
        rows.append({"variant": r["variant"], "eligible": not reasons, col: r[col],
                     "ttft_p95_s": r["ttft_p95_s"], "decode_tokens_per_s": r["decode_tokens_per_s"],
                     "kl_mean": r["kl_mean"], "reason": "; ".join(reasons) or f"meets every SLO; ranked by {col}"})
    table = pd.DataFrame(rows).sort_values(["eligible", col], ascending=[False, asc], kind="stable")
    return table.reset_index(drop=True)
