"""The offline lab: the training recipe, evaluation on a folder or on real landmarked pictures,
the evaluation report, the export of phantoms as DICOM, and the demo round trip.

Here the phantom generator (``scoring.phantom``) meets ``dicom_io``: the phantom makes pixels,
geometry and labels, :mod:`~worker.lab.phantom_export` writes them as radiographs, and the
recipe and evaluations read them back through ``dicom_io`` as the node would.

May import ``dicom_io``, ``scoring``, ``worker.scoring_io`` and ``worker.png``; never the node,
the jobs, the database or the API (the demo runs a node as a process of its own). Nothing in the
service imports the lab; the command line does.
"""
