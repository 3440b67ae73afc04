"""Text embedding service."""
