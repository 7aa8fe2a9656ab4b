"""Print what the last `make demo` built: each asset's latest materialization and its key numbers.

Reads the Dagster instance under $DAGSTER_HOME (the same one `make dev` shows).
"""
from __future__ import annotations

import sys

import dagster as dg

# (asset, metadata keys worth a line), in lifecycle order.
SHOWN = [
    ("prompt_corpus", ["reference_prompts", "shifted_prompts", "uri"]),
    ("base_model", ["source", "architecture", "parameters", "bytes", "sha256", "load_seconds", "smoke_answer", "uri"]),
]


def _value(v) -> str:
    raw = getattr(v, "value", v)
    if isinstance(raw, float):
        return f"{raw:,.3g}"
    if isinstance(raw, int):
        return f"{raw:,}"
    return str(raw)


def main() -> int:
    instance = dg.DagsterInstance.get()
    missing = 0
    for asset, keys in SHOWN:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        if event is None or event.asset_materialization is None:
            print(f"{asset}: not materialized")
            missing += 1
            continue
        mat = event.asset_materialization
        part = f"[{mat.partition}]" if mat.partition else ""
        print(f"{asset}{part}")
        for k in keys:
            if k in mat.metadata:
                print(f"  {k:<16} {_value(mat.metadata[k])}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
