"""The Tollgate edge agent: drivers, normalizer, outbox and forwarder for one site."""
