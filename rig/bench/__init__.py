"""What the plans call: the bench opened from the station file, retrying operations, procedures, recording.

:mod:`rig.bench.open` builds real or twin devices from the station file (the one wiring used by the plugin, the
CLI, the benchmarks and the tests); :mod:`rig.bench.ops` wraps them in bounded retries with fault attribution;
:mod:`rig.bench.procedures` holds the measurement procedures the plans share; :mod:`rig.bench.recording` records a
run; :mod:`rig.bench.figures` turns results into report figures; :mod:`rig.bench.outputs` publishes a run.
"""
