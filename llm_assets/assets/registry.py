"""The champion: the best gated variant by SLOs and objective, registered in MLflow under alias @champion."""
import dagster as dg
import pandas as pd
from pydantic import Field

from llm_assets.assets.benchmark import benchmark_results, latest_results
from llm_assets.assets.common import md_table, mlflow_link, read_latest
from llm_assets.core.selection import SLO, rank_candidates
from resources.artifact_store import ArtifactStore
from resources.mlflow_tracking import MLflowTracking


class ChampionConfig(dg.Config):
    max_ttft_p95_s: float = Field(default=2.0, description="SLO: p95 time to first token (s).")
    min_decode_tokens_per_s: float = Field(default=5.0, description="SLO: mean decode tokens/s per request.")
    max_kl: float | None = Field(default=None, description="SLO: a KL bound stricter than the quality gate.")
    objective: str = Field(default="cost", description="'cost' (lowest cost per 1M tokens once cost_report "
                                                       "exists, else falls back) or 'latency' (lowest p95 e2e).")


@dg.asset(deps=[benchmark_results], group_name="registry", kinds={"mlflow"})
def champion_model(context: dg.AssetExecutionContext, config: ChampionConfig, artifact_store: ArtifactStore,
                   mlflow: MLflowTracking) -> dg.MaterializeResult:
    """The variant that serves traffic: it passed every gate and meets the SLOs, and wins on the objective.

    Registered as a new version of the pipeline's MLflow model with alias @champion (the one it
    replaces keeps @previous). If nothing is eligible, the asset fails with every reason and the
    registry is not touched.
    """
    results = latest_results(artifact_store)
    if results.empty:
        raise dg.Failure("no benchmark_results yet: materialize benchmark_results for the variants first")
    slo = SLO(max_ttft_p95_s=config.max_ttft_p95_s, min_decode_tokens_per_s=config.min_decode_tokens_per_s,
              max_kl=config.max_kl)
    table = rank_candidates(results, slo, config.objective)
    shown = md_table(table.round(4))
    if not table["eligible"].any():
        reasons = "; ".join(f"{r.variant}: {r.reason}" for r in table.itertuples())
        raise dg.Failure(description=f"no variant is eligible, registry untouched. {reasons}",
                         metadata={"candidates": shown, "slo": dg.MetadataValue.json(slo.model_dump())})
    pick = table.iloc[0]["variant"]
    bench = read_latest(artifact_store, "benchmark_results", pick)
    # Register the build that was measured, even if compressed_model has been rebuilt since.
    row = results.set_index("variant").loc[pick]
    if pd.isna(row.get("variant_prefix")):
        raise dg.Failure(f"the benchmark_results row of {pick} predates recording the measured build; "
                         f"re-materialize benchmark_results[{pick}]")
    digest, prefix = row["variant_digest"], row["variant_prefix"]
    current = mlflow.get_alias("champion")
    if current is not None and current.tags.get("variant_digest") == digest:
        context.log.info(f"{pick} (digest {digest[:12]}) is already champion version {current.version}")
        version, previous, changed = current.version, None, False
    else:
        with mlflow.run("champion_model", tags={"asset": "champion_model", "variant": pick}) as run:
            run.log_params({**slo.model_dump(), "objective": config.objective, "pick": pick})
            run.log_dict(table.to_dict("records"), "candidates.json")
            version, previous = mlflow.register_champion(
                source=artifact_store.uri(prefix), run_id=run.run_id,
                tags={"variant": pick, "base_sha256": row["base_sha256"], "variant_digest": digest,
                      "prefix": prefix, "benchmark_run_id": bench.get("mlflow_run_id", ""),
                      "threads": int(row["threads"])})
        changed = True
        context.log.info(f"registered {pick} as {mlflow.registered_model} version {version} @champion"
                         + (f" (previous: {previous})" if previous else ""))
    return dg.MaterializeResult(metadata={
        "champion": pick,
        "registered_model": mlflow.registered_model,
        "version": version,
        "previous_version": previous or "",
        "changed": changed,
        "objective": f"{config.objective} (cost_report not built yet: ranked by p95 end-to-end latency)"
                     if "cost_per_1m_tokens" not in results else config.objective,
        "candidates": shown,
        "e2e_p95_s": dg.MetadataValue.float(float(row["e2e_p95_s"])),
        "kl_mean": dg.MetadataValue.float(float(row["kl_mean"])),
        "decode_tokens_per_s": dg.MetadataValue.float(float(row["decode_tokens_per_s"])),
        "registry": mlflow_link(f"{mlflow.tracking_uri} models:/{mlflow.registered_model}@champion"),
    })
