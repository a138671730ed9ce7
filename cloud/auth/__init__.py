"""Admin API keys."""
