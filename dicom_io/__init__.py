"""Everything that speaks DICOM, and nothing else: no Celery, no SQL, no torch.

One package or module per object family, in highdicom's manner:

- ``reading/`` — a CR, DX or SC radiograph into a display-ready grey-scale array with its
  geometry (:func:`dicom_io.reading.read_radiograph`), and the checks on arrival;
- ``radiograph`` — the CR/DX writer (pixels and geometry in, a Part-10 file out);
- ``sr/``, ``sc/``, ``pr/`` — the result objects: the TID 1500 SR (and reading it back), the
  overlay Secondary Capture, the Grayscale Softcopy Presentation State;
- ``results`` — the plain structure those are built from, and the errors of building;
- ``codes``, ``source_header``, ``annotations`` — what the result objects share: their coded
  concepts, the source's header as each IOD copies it, and the texts and label placement of
  the SC and the GSPS;
- ``net/`` — the storage SCP and SCU, with the seam between protocol and application.

It may import pydicom, highdicom, pynetdicom, numpy and OpenCV; never ``scoring`` or
``worker`` (the import contracts in ``pyproject.toml`` say so).
"""
