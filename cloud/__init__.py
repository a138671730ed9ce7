"""The Tollgate cloud collector: ingest of signed gateway batches, storage, and their HTTP API."""
