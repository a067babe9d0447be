"""Run records, the results store and SPC (DESIGN.md §6)."""
