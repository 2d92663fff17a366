"""Image in, joints and scores out: a grey-scale numpy array with its pixel spacing and
laterality goes in, plain dataclasses come out.

- :mod:`.pipeline` — :class:`~.pipeline.Scorer`, the scorer's entry: detect, name, crop, grade,
  abstain.
- :mod:`.joints` — the scored joints' names and types, shared by everything below.
- :mod:`.detection` — finding and naming the joints (keypoint network or Haar cascade).
- :mod:`.cnn`, :mod:`.crops`, :mod:`.typicality` — the grading networks, the crops they see,
  and what they saw in training (for "not assessable").
- :mod:`.model` — the model's artefacts, identity and card; the shipped model in ``model/default``.
- :mod:`.training`, :mod:`.evaluation` — the offline lab: how models are made and judged.
- :mod:`.phantom` — the synthetic radiographs with exact labels that the lab trains on.

Imports numpy, scipy, OpenCV and torch; never ``dicom_io``, ``worker``, networking, Celery or
SQL. The scorer (``pipeline`` and what it imports) never imports ``scoring.phantom``.
"""
