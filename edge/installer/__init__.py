"""The installer's and technician's tools: `tollgate-edge init`, `check`, `scan`, `enroll`,
`rotate-key`, `technician set-password` and `support-bundle`.

None of it runs inside the agent (drivers -> normalize -> outbox -> forwarder); it prepares a
site, tries its devices and packs what support needs. Each module imports its heavy libraries
inside the command that uses them, so `tollgate-edge --help` stays quick.
"""
