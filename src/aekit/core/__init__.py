"""aekit.core."""
