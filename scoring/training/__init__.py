"""How the networks and the cascade are trained: from labelled images to the artefacts that
:mod:`scoring.model` loads.

- :mod:`.cnn` — the JSN and erosion networks on joint crops.
- :mod:`.keypoints` — the keypoint network on whole images with heatmap targets.
- :mod:`.cascade` — the Haar cascade, by OpenCV 3.4's ``opencv_traincascade``.
- :mod:`.stopping` — early stopping on validation loss, shared by both networks' trainers.

Imports the rest of ``scoring`` but not ``scoring.phantom``: where the labelled images come from
(phantoms, a folder) is the caller's business (``worker``'s lab).
"""
