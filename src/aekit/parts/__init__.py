"""aekit.parts."""
