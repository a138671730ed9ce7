"""Outgoing webhooks: endpoints per event type, a transactional outbox, signed delivery.

Layer 1 (a sink): it imports only foundation modules and its own; anyone above may `emit`.
"""
