"""Rating: billing periods, money, metrics, price models and plan rating (pure)."""
