"""Data quality: incidents (refused or re-sent batches) and seq gaps per gateway."""
