"""Ingest: signed gateway batches in (verify, dedupe, store raw), stored events out."""
