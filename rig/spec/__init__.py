"""The neutral layer: what both sides of every wire and every file stand on.

Wire codes and grammars (PTP and the phone's vendor properties/events in :mod:`rig.spec.ptp`, the assist object
encodings in :mod:`rig.spec.ptp_assist`, GRBL 1.1 codes, messages and limits in :mod:`rig.spec.grbl`), file
layouts (DNG in :mod:`rig.spec.dng`, the DNG GainMap opcode list in :mod:`rig.spec.gainmap`, the calibration
profile the phone stores in :mod:`rig.spec.profile`), the strict schema base (:mod:`rig.spec.model`) and the value
types every layer passes around (:mod:`rig.spec.types`). It imports nothing of ours but :mod:`rig.errors`: the
drivers, the twin's peers and the measurements all import it, and none of them imports another's module for these.
"""
