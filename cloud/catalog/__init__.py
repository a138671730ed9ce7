"""Accounts, device profiles, devices, bindings, metrics and plans."""
