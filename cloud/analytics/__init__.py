"""Usage analytics: an account's metric per local day, hour or month."""
