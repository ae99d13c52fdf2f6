"""All plotting (matplotlib Figure objects; no global backend switch)."""
