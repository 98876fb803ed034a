"""aekit.evaluation."""
