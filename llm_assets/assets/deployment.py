"""The live endpoint: the @champion served behind the local serverless gateway, deployed blue/green."""
import dagster as dg

from llm_assets.assets.registry import champion_model
from resources.artifact_store import ArtifactStore
from resources.deploy_target import LocalServerlessTarget
from resources.mlflow_tracking import MLflowTracking
from serving.deploy import DeployError


@dg.asset(deps=[champion_model], group_name="serving", kinds={"fastapi"})
def deployed_endpoint(context: dg.AssetExecutionContext, artifact_store: ArtifactStore, mlflow: MLflowTracking,
                      deploy_target: LocalServerlessTarget) -> dg.MaterializeResult:
    """An OpenAI-compatible endpoint on 127.0.0.1 serving the @champion model version.

    Blue/green: the new version starts on a fresh port and must pass a smoke test (health and a
    real completion) before traffic switches; the old version then drains and stops. A failed
    smoke test leaves the previous version serving, moves no alias (@deployed stays), and fails
    this asset with the reason. The endpoint outlives the run; `make endpoint-stop` stops it.
    """
    champ = mlflow.get_alias("champion")
    if champ is None:
        raise dg.Failure("no @champion in the registry: materialize champion_model first")
    version = f"{mlflow.registered_model}-v{champ.version}"
    variant = champ.tags["variant"]
    model_dir = artifact_store.get_dir(champ.tags["prefix"])
    before = deploy_target.serving_version()
    if before == version:
        context.log.info(f"{version} is already serving at {deploy_target.url()}")
        result = {"url": deploy_target.url(), "cold_start_s": None, "previous_version": before}
    else:
        context.log.info(f"deploying {version} ({variant}) blue/green; now serving: {before or 'nothing'}")
        try:
            result = deploy_target.deploy(str(model_dir), version, variant, int(champ.tags.get("threads") or 1))
        except DeployError as exc:
            raise dg.Failure(description=f"deployment of {version} failed: {exc}",
                             metadata={"still_serving": before or "nothing"}) from None
        mlflow.set_alias("deployed", champ.version)
    answer = deploy_target.ask("What is the capital of France?")
    context.log.info(f"{result['url']} answers: {answer!r}")
    return dg.MaterializeResult(metadata={
        "url": dg.MetadataValue.url(result["url"]),
        "version": version,
        "variant": variant,
        "registry_version": champ.version,
        "previous_version": result.get("previous_version") or "",
        "cold_start_s": dg.MetadataValue.float(round(result["cold_start_s"], 3)) if result.get("cold_start_s")
        else "unchanged (already serving)",
        "sample_answer": f"What is the capital of France? -> {answer}",
        "try_it": f"curl -s {result['url']}/v1/chat/completions -H 'content-type: application/json' "
                  "-d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}'",
    })
