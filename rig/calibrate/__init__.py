"""Calibration outputs: measurements → :class:`~rig.spec.profile.CalibrationProfile` and its exporters.

``profile`` (the versioned JSON document the phone stores), ``shading`` (per-Bayer-channel gain maps from a flat
field), ``gainmap`` (DNG GainMap opcode lists), ``opencv_yaml`` (OpenCV FileStorage camera model) and ``lensfun``
(a lensfun XML ``<lens>`` entry). Submodules are imported explicitly; this package imports nothing heavy.
"""
