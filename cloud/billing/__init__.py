"""Billing: bindings, sessions, metrics, plans, rating and invoices."""
