"""aekit.store."""
