"""How well a model does, against known truth, in plain numpy.

- :mod:`.scores` — per-joint scores against their labels: agreement, confusion, correlation.
- :mod:`.metrics` — the statistics :mod:`.scores` reports (weighted kappa, Pearson, ...).
- :mod:`.agreement` — two raters on the same joints, for a site's own validation: Table 3,
  ICC(2,1) and Bland–Altman of per-image totals, 95 % intervals by bootstrap over images.
- :mod:`.landmark_match` and :mod:`.landmarks` — joints found against landmarks on real
  radiographs, and the figures made of it.
- :mod:`.realism` — how phantom joint clips differ from real ones.

Imports only :mod:`scoring.joints` (never ``scoring.phantom``, ``dicom_io`` or ``worker``).
"""
