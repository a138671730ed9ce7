"""Gateways: the registry of enrolled gateways and their Ed25519 public keys."""
