"""The JetStream ingest log: collectors append verified batches, sinks store them exactly once."""
