"""The incident sink (layer 1): one lifecycle model that every layer may record into."""
