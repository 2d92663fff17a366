"""Finding a hand's scored joints in a grey-scale image, and naming them.

Two detectors, chosen by the model's card:

- :mod:`.keypoints` and :mod:`.hands` — the default: a small U-Net gives one heatmap per joint;
  the peaks are split into hands, named by assignment and placed against the mean hand
  (:mod:`.geometry`).
- :mod:`.cascade` — the paper's Haar cascade on a working image at 0.5 mm per pixel; its boxes
  are named by :mod:`.identify`, which fits the mean layout of a hand's ten joints.

Imports only :mod:`scoring.joints` and its own modules (never ``scoring.phantom``, ``dicom_io``
or ``worker``).
"""
