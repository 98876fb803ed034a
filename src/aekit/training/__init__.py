"""aekit.training."""
