"""Schemathesis over the real collector: `python -m fuzz` (run by `make fuzz`).

For each backend (SQLite, PostgreSQL) it migrates a fresh database, loads the demo catalog, a
direct source and a gateway so that ids exist, makes one API key per role (`fuzz.ROLES`),
starts `tollgate-cloud serve`, and runs `schemathesis run` over the whole OpenAPI once per key,
bounded by `--max-examples` and `--max-time`. The checks: no server error, a documented status
code, a conforming content type and a body that matches the schema. Failures are written as a
Markdown list (route, input, answer); accepted ones live in `fuzz/baseline.json`.
"""

# One entry per kind of key the collector knows (cloud/auth/roles.py); an ingest key names the
# demo's direct source, which fuzz.collector loads.
ROLES: tuple[str, ...] = ("admin", "billing", "viewer", "ingest:yard-bins")
