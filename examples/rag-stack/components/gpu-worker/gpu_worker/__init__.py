"""Batch worker."""
