"""The usage read model: what an account used, loaded in bulk and bucketed (layer 7).

Below invoices and analytics, which both read it and never each other.
"""
