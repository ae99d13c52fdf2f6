"""User input: YAML specs (validated, with file:line locations), rate expressions, params files, data CSVs."""
