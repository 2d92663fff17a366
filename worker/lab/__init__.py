"""The offline lab: the training recipe, evaluation on a folder or on real landmarked pictures,
the evaluation report, the export of phantoms as DICOM, and the demo round trip.

Here the phantom generator (``scoring.phantom``) meets ``dicom_io``: the phantom makes pixels,
geometry and labels, :mod:`~worker.lab.phantom_export` writes them as radiographs, and the
recipe and evaluations read them back through ``dicom_io`` as the node would.

May import ``dicom_io``, ``scoring`` and ``worker.scoring_io``; the node only in the demo (which
runs one). Nothing in the service imports the lab.
"""
