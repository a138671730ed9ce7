"""The Tollgate event contract shared by the edge agent and the cloud collector (pure, no I/O)."""
