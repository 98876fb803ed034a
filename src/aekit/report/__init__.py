"""aekit.report.html."""
