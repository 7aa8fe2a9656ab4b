"""llmops: the Dagster layer (assets, checks, one Definitions) over `llm_assets.core`."""
