"""Replay traces through storage layers and project flash lifetime."""
