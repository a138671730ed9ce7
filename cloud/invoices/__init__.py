"""Invoices: runs, finalization, adjustments, evidence and exports."""
