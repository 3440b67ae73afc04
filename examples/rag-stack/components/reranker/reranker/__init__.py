"""Re-ranks search hits."""
