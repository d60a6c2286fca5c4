"""opsbot package."""
