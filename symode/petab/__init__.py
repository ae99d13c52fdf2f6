"""PEtab: import and export of parameter-estimation problems (SBML model + tables)."""
