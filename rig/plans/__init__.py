"""The plans users run: ``calibration``, ``signoff`` and ``certification`` (pytest modules).

Each plan module sets ``PLAN`` (its name, which is also its limits file in ``fixtures/limits/``) and uses only the
fixtures of :mod:`rig.plugin`. Run them with ``rig signoff|calibrate|certify`` or
``pytest --pyargs rig.plans.signoff --station …``.
"""
