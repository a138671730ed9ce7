"""Usage thresholds: an account told once per period when its usage so far crosses a value."""
