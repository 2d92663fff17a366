"""What the storage SCP hands the node's receiver, for the tests that call the receiver directly.

The SCP writes each data set as a Part-10 file under a uuid name in its spool and describes it
with a :class:`~dicom_io.net.ReceivedInstance`; :func:`spooled` does the same for a data set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from pathlib import Path

from pydicom import Dataset

from dicom_io.net import ReceivedInstance


def spooled(spool: Path, ds: Dataset, calling_ae: str = "MODALITY") -> ReceivedInstance:
    """``ds`` written into ``spool`` as the SCP leaves it, and the SCP's description of it."""
    spool.mkdir(parents=True, exist_ok=True)
    path = spool / f"{uuid.uuid4().hex}.dcm"
    ds.save_as(path, enforce_file_format=True)
    body = path.read_bytes()
    return ReceivedInstance(
        path=path,
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
        calling_ae_title=calling_ae,
        calling_host="127.0.0.1",
        calling_port=1234,
        called_ae_title="RASCORE",
        received_at=dt.datetime.now(dt.UTC),
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
    )
