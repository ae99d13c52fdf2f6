"""Result files: fit.json, report.md and their figures."""
