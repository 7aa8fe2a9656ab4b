"""Pure domain logic. Nothing here imports dagster or the resources package."""
