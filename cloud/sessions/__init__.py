"""Sessions: a pure sessionizer and its incremental store."""
