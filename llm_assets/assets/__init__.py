"""Thin Dagster assets, one module per lifecycle phase."""
