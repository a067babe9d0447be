"""Pure measurements: arrays in, typed results with units out (DESIGN.md §5).

Nothing here imports :mod:`rig.devices` or :mod:`rig.twin`: the same functions grade a bench capture and a twin
render, and the twin can never grade itself.
"""
