"""Fused patch-based planning: regions, costs and the search (see traces/README.md)."""
