"""Networking tables, read from ``dicom_io.net`` and the node's own SCP: the SOP classes and
transfer syntaxes negotiated, the association limits and time-outs, the DIMSE statuses."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator

from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS

from dicom_io.net import contexts, handler, peers, qr, scp, scu, spool
from dicom_io.net.handler import STATUS_PROCESSING_FAILURE, SUCCESS_OR_WARNING, StoreRefused
from dicom_io.net.scp import StorageSCP
from worker.conformance.markdown import hexs, table
from worker.node import receiving
from worker.node.receivers import storage_scp
from worker.settings import Settings

SR_CLASS = UID("1.2.840.10008.5.1.4.1.1.88.34")
GSPS_CLASS = UID("1.2.840.10008.5.1.4.1.1.11.1")


def default_settings() -> Settings:
    """The settings' defaults, whatever the environment or a ``.env`` file says."""
    return Settings.model_construct()


def node_scp() -> StorageSCP:
    """The node's SCP as ``rascore serve`` makes it on the defaults (not started)."""
    return storage_scp(default_settings(), lambda _instance: 0x0000)


def accepted_contexts() -> list[tuple[str, list[str]]]:
    """(abstract syntax, transfer syntaxes in order of preference) the node's SCP accepts."""
    node = node_scp()
    return [
        (str(cx.abstract_syntax), [str(ts) for ts in cx.transfer_syntax])
        for cx in contexts.supported_contexts(node.sop_classes)
    ]


def _name(uid: str) -> str:
    return UID(uid).name


def sop_class_overview() -> str:
    """PS3.2's overview table: each SOP class, as SCU and as SCP."""
    scp_classes = {sop for sop, _ in accepted_contexts()}
    scu_classes = {
        *map(str, contexts.RESULT_SOP_CLASSES),
        str(StudyRootQueryRetrieveInformationModelFind),
        str(StudyRootQueryRetrieveInformationModelMove),
    }  # fmt: skip
    rows = [
        (_name(sop), sop, "Yes" if sop in scu_classes else "No",
         "Yes" if sop in scp_classes else "No")
        for sop in sorted(scp_classes | scu_classes, key=_order)
    ]  # fmt: skip
    return table(("SOP class", "UID", "SCU", "SCP"), rows)


def _order(uid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in uid.split("."))


def scp_contexts_table() -> str:
    rows = []
    for sop, syntaxes in accepted_contexts():
        for rank, ts in enumerate(syntaxes, 1):
            rows.append((_name(sop), sop, _name(ts), ts, rank, "SCP"))
    return table(
        ("Abstract syntax", "SOP class UID", "Transfer syntax", "UID", "Preference", "Role"), rows
    )


def scu_storage_contexts_table(written: dict[str, str]) -> str:
    """What the outbox proposes for each result object: the syntax it is written in
    (``written``: SOP class UID to transfer syntax UID), then uncompressed."""
    fallback = [str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)]
    rows = []
    for sop in contexts.RESULT_SOP_CLASSES:
        own = written[str(sop)]
        rows.append((_name(sop), str(sop), f"{_name(own)} (the file's own)", own, "SCU"))
        rows.append((_name(sop), str(sop), ", ".join(map(_name, fallback)),
                     ", ".join(fallback), "SCU"))  # fmt: skip
    return table(("Abstract syntax", "SOP class UID", "Transfer syntaxes", "UIDs", "Role"), rows)


def scu_other_contexts_table() -> str:
    """The query/retrieve SCU of the priors (pynetdicom's default transfer syntaxes)."""
    rows = []
    for sop, syntaxes, used in (
        (StudyRootQueryRetrieveInformationModelFind,
         build_context(StudyRootQueryRetrieveInformationModelFind).transfer_syntax, "C-FIND"),
        (StudyRootQueryRetrieveInformationModelMove,
         build_context(StudyRootQueryRetrieveInformationModelMove).transfer_syntax, "C-MOVE"),
    ):  # fmt: skip
        names = ", ".join(_name(str(ts)) for ts in syntaxes)
        rows.append((_name(str(sop)), str(sop), names, used, "SCU"))
    return table(("Abstract syntax", "SOP class UID", "Transfer syntaxes", "DIMSE", "Role"), rows)


def query_keys_table() -> str:
    """The C-FIND identifiers sent, at each level, as built by :mod:`dicom_io.net.qr`."""
    rows = []
    study = qr._study_query("P", "20140101-20240101")
    series = qr._series_query("1.2.3")
    for level, ds in (("STUDY", study), ("SERIES", series)):
        for element in ds:
            if element.keyword == "QueryRetrieveLevel":
                continue
            value = _MATCHING.get(element.keyword, "?") if element.value else "return key"
            rows.append((level, element.keyword, f"({element.tag.group:04X},"
                         f"{element.tag.element:04X})", value))  # fmt: skip
    return table(("Level", "Attribute", "Tag", "Matching key or return key"), rows)


_MATCHING = {
    "PatientID": "single value: the new study's Patient ID (never empty)",
    "StudyDate": "range: RASCORE_PRIORS_YEARS before the new study's date, to it",
    "StudyInstanceUID": "single value: a study found at STUDY level",
}


def _default(function: object, name: str) -> object:
    return inspect.signature(function).parameters[name].default  # type: ignore[arg-type]


def policy_rows() -> Iterator[tuple[str, str, str]]:
    """(parameter, value, where it is set) for the association policy table."""
    node, settings = node_scp(), default_settings()
    scu_ae = peers.new_ae(settings.ae_title, float(_default(scu.send_files, "timeout")))  # type: ignore[arg-type]
    yield "AE title (called, and calling as SCU)", settings.ae_title, "RASCORE_AE_TITLE"
    yield "Port (listening)", str(settings.dicom_port), "RASCORE_DICOM_PORT"
    yield "Application context name", "1.2.840.10008.3.1.1.1", "DICOM"
    yield "Maximum PDU size received (SCP)", f"{node.max_pdu_size} bytes", "fixed"
    yield "Maximum PDU size received (SCU)", f"{scu_ae.maximum_pdu_size} bytes", "fixed"
    yield "Associations at once (total, all receiver processes)", str(
        node.max_associations), "RASCORE_MAX_ASSOCIATIONS"  # fmt: skip
    yield "Associations at once per calling host", str(
        node.max_associations_per_host), "RASCORE_MAX_ASSOCIATIONS_PER_HOST"  # fmt: skip
    yield "Largest data set accepted", f"{node.max_dataset_bytes // 2**20} MiB", \
        "RASCORE_MAX_DATASET_MB"  # fmt: skip
    yield "Free disk kept (spool and store)", f"{node.min_free_bytes // 2**20} MiB", \
        "RASCORE_MIN_FREE_MB"  # fmt: skip
    yield "ACSE time-out, request deadline (SCP)", f"{node.acse_timeout:g} s", "fixed"
    yield "DIMSE time-out (SCP)", f"{node.dimse_timeout:g} s", "fixed"
    yield "Network (idle) time-out (SCP)", f"{node.network_timeout:g} s", "fixed"
    yield "Connection, ACSE, DIMSE and network time-out (storage SCU)", \
        f"{_default(scu.send_files, 'timeout'):g} s", "fixed"  # fmt: skip
    yield "Time-outs (C-FIND SCU)", f"{_default(qr.find_studies, 'timeout'):g} s", "fixed"
    yield "Time-outs, per response (C-MOVE SCU)", \
        f"{_default(qr.move_study, 'timeout'):g} s", "fixed"  # fmt: skip
    yield "Presentation contexts proposed per association (SCU)", str(scu.MAX_CONTEXTS), "fixed"
    yield "Called AE title checked (SCP)", "Yes" if node.require_called_aet else "No", "fixed"
    yield "Asynchronous operations window", "not negotiated (1 outstanding operation)", "fixed"


def policy_table() -> str:
    return table(("Parameter", "Default", "Setting"), policy_rows())


def store_statuses() -> list[int]:
    """Every status the SCP can answer a C-STORE with, in the handler's terms."""
    refused = {cls.status for cls in _subclasses(StoreRefused)} | {StoreRefused.status}
    return sorted(set(SUCCESS_OR_WARNING) | refused | {STATUS_PROCESSING_FAILURE})


def _subclasses(cls: type[StoreRefused]) -> set[type[StoreRefused]]:
    found: set[type[StoreRefused]] = set(cls.__subclasses__())
    return found | {s for c in found for s in _subclasses(c)}


_RAISE = re.compile(r'raise (\w+)\(\s*(f?)"([^"]*)"', re.S)


def node_comments() -> dict[int, list[str]]:
    """The Error Comments the node's own handler sends, by status (from its source)."""
    classes = {cls.__name__: cls.status for cls in _subclasses(StoreRefused)}
    found: dict[int, list[str]] = {}
    for module in (receiving, scp, spool):
        for name, is_f, text in _RAISE.findall(inspect.getsource(module)):
            if name in classes:
                text = re.sub(r"\{[^}]*\}", "…", text) if is_f else text
                found.setdefault(classes[name], []).append(text)
    return found


def status_table(when: dict[int, str]) -> str:
    comments = node_comments()
    rows = []
    for status in store_statuses():
        category, meaning = STORAGE_SERVICE_CLASS_STATUS.get(status, ("", ""))
        if status == 0x0000:
            category, meaning = "Success", "Success"
        if status == STATUS_PROCESSING_FAILURE:
            category, meaning = "Failure", "Processing failure"
        listed = "; ".join(f"“{c}”" for c in dict.fromkeys(comments.get(status, [])))
        rows.append((hexs(status), category, meaning, when.get(status, ""), listed or "—"))
    return table(("Status", "Category", "Meaning", "When", "Error Comments sent"), rows)


REJECTIONS: tuple[tuple[tuple[int, int, int], str], ...] = (
    ((0x01, 0x01, 0x03), "the calling AE title is not in RASCORE_ALLOWED_AETS"),
    ((0x02, 0x03, 0x01), "the spool's or the store's disk is below RASCORE_MIN_FREE_MB"),
    ((0x02, 0x03, 0x02), "RASCORE_MAX_ASSOCIATIONS associations already, over all receivers"),
)
"""A-ASSOCIATE-RJ (result, source, reason) the SCP sends, and why; a test finds each in scp.py."""


def rejection_table() -> str:
    results = {1: "rejected-permanent", 2: "rejected-transient"}
    sources = {1: "service-user", 3: "service-provider (presentation)"}
    rows = [(results[r], sources[s], f"{reason:#04x}", why) for (r, s, reason), why in REJECTIONS]
    return table(("Result", "Source", "Reason", "When"), rows)


def handler_source() -> str:
    return inspect.getsource(handler)
