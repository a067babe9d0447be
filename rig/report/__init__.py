"""Per-run outputs: the HTML/PDF report with plots, JUnit XML, CSV/Parquet (DESIGN.md §6).

Call :func:`write_run_outputs` at the end of a run; ``rig report RUN`` calls it again from the run folder.
"""

from rig.report.outputs import OUTPUT_FILES, load_run_dir, write_run_outputs

__all__ = ["OUTPUT_FILES", "load_run_dir", "write_run_outputs"]
