"""DICOM networking: the storage SCP that receives radiographs, and the SCU that sends results.

As in pynetdicom, the protocol and the application meet at one seam: the SCP's transport
(``transport``: bounded sockets and server) and spool (``spool``: durable Part-10 files) hand a
:class:`ReceivedInstance` to a :data:`StoreHandler` (``handler``), whose return or
:class:`StoreRefused` becomes the DIMSE status; ``contexts`` says what is negotiated. ``scu``
sends files and reports each instance's status; ``qr`` finds a patient's studies in a PACS
(C-FIND) and moves them to an AE (C-MOVE).

The package imports pydicom and pynetdicom, never another ``dicom_io`` package, ``scoring``
or ``worker``.
"""

from dicom_io.net.contexts import (
    RESULT_SOP_CLASSES,
    STORAGE_SOP_CLASSES,
    TRANSFER_SYNTAXES,
    supported_contexts,
)
from dicom_io.net.handler import (
    CannotUnderstand,
    DataSetMismatch,
    OutOfResources,
    ReceivedInstance,
    SOPClassNotSupported,
    StoreHandler,
    StoreRefused,
)
from dicom_io.net.peers import (
    Destination,
    ae_title_problem,
    check_ae_title,
    client_tls_context,
    parse_destinations,
)
from dicom_io.net.qr import (
    MoveResult,
    PeerUnavailable,
    QueryFailed,
    QueryRetrieveError,
    StudyMatch,
    find_studies,
    move_study,
)
from dicom_io.net.scp import StorageSCP
from dicom_io.net.scu import MAX_CONTEXTS, SendStatus, echo, send_files

__all__ = [
    "MAX_CONTEXTS",
    "RESULT_SOP_CLASSES",
    "STORAGE_SOP_CLASSES",
    "TRANSFER_SYNTAXES",
    "CannotUnderstand",
    "DataSetMismatch",
    "Destination",
    "MoveResult",
    "OutOfResources",
    "PeerUnavailable",
    "QueryFailed",
    "QueryRetrieveError",
    "ReceivedInstance",
    "SOPClassNotSupported",
    "SendStatus",
    "StorageSCP",
    "StoreHandler",
    "StoreRefused",
    "StudyMatch",
    "ae_title_problem",
    "check_ae_title",
    "client_tls_context",
    "echo",
    "find_studies",
    "move_study",
    "parse_destinations",
    "send_files",
    "supported_contexts",
]
