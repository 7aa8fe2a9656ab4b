"""PNG plots for the UI (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import base64
import io

import pandas as pd


def quality_vs_latency_png(df: pd.DataFrame, latency_col: str = "e2e_p95_s") -> bytes:
    """Quality loss (mean KL to the reference, symlog) against p95 latency, one point per variant,
    green if it passed the quality gate, red if not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for _, row in df.iterrows():
        ok = bool(row.get("gate_passed", True))
        ax.scatter(row[latency_col], row["kl_mean"], s=60, color="#2a9d8f" if ok else "#e63946", zorder=3)
        ax.annotate(row["variant"], (row[latency_col], row["kl_mean"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=9)
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.margins(x=0.18, y=0.12)  # room for the labels
    ax.set_xlabel(f"p95 end-to-end latency (s), {int(df['output_tokens_per_request'].iloc[0])} output tokens"
                  if "output_tokens_per_request" in df else "p95 latency (s)")
    ax.set_ylabel("mean KL to reference (nats/token)")
    ax.set_title("Quality loss vs latency (green: passes the quality gate)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def md_image(png: bytes, alt: str = "plot") -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
