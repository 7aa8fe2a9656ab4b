"""The deployed endpoint (OpenAI-compatible app, serverless gateway)."""
