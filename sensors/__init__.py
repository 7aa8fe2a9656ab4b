"""Drift and cost sensors, schedules."""
