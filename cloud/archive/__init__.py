"""Closed months of events moved out of the database into files that verify offline."""
