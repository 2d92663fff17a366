"""The DICOM conformance statement (PS3.2), generated from the code.

Why generated: a hand-written statement drifts from what the node does. Here every table that
can drift is read from the code at generation time — the SCP's presentation contexts from the
node's own (unstarted) SCP, the SCU's from ``dicom_io.net``, the statuses from the handler's
constants and the node's handler source, the limits from the settings' defaults and the SCP,
the codes from ``dicom_io.codes``, and the IOD modules and SR content tree by walking objects
built from a tiny in-memory radiograph — while the prose lives in :mod:`.prose`. The output
is deterministic (no dates, no UIDs made at generation time), so the committed document can
be compared with a fresh one: ``rascore conformance --check``.

Modules: ``network`` (negotiation, policies, statuses), ``objects`` (IODs, content trees,
codes), ``samples`` (the objects walked), ``modules`` (attribute to module), ``configuration``
(settings), ``prose`` (the text), ``markdown``.
"""

from __future__ import annotations

import difflib
import ssl
from collections.abc import Callable

from dicom_io.net.peers import client_tls_context
from worker.conformance import configuration, network, objects, prose
from worker.conformance.markdown import table
from worker.conformance.samples import samples
from worker.db.models import AuditEventType

__all__ = ["diff_summary", "generate"]

Section = tuple[str, str, Callable[[], str]]


def _networking() -> str:
    written = {str(o.SOPClassUID): str(o.file_meta.TransferSyntaxUID)
               for _, _, o in objects.objects()}  # fmt: skip
    return "\n\n".join([
        "### 4.1 Implementation model", "#### 4.1.1 Application data flow", prose.DATA_FLOW,
        "#### 4.1.2 Functional definition of the AE", prose.FUNCTIONAL,
        "#### 4.1.3 Sequencing of real-world activities", prose.SEQUENCING,
        "### 4.2 AE specification: the rascore AE", "#### 4.2.1 SOP classes",
        network.sop_class_overview(),
        "#### 4.2.2 Association policies", network.policy_table(),
        "Implementation Class UID and Version Name: pynetdicom's, as its version sets them.",
        "#### 4.2.3 Association initiation policy",
        "##### Activity: send results (Storage SCU)", prose.SCU_STORAGE,
        network.scu_storage_contexts_table(written),
        "##### Activity: fetch prior studies (Query/Retrieve SCU)", prose.QR_SCU,
        network.query_keys_table(), "Presentation contexts proposed:",
        network.scu_other_contexts_table(),
        "#### 4.2.4 Association acceptance policy", prose.ASSOCIATION_ACCEPTANCE,
        network.rejection_table(),
        "##### Activity: receive images (Storage SCP, Verification SCP)", prose.SCP_STORAGE,
        "Presentation contexts accepted (any number of contexts per association; SCP role "
        "only; SCP/SCU role selection and extended negotiation are not supported):",
        network.scp_contexts_table(),
        "##### C-STORE statuses returned", network.status_table(prose.STATUS_WHEN),
        prose.STATUS_NOTE,
        "### 4.3 Network interfaces", prose.NETWORK,
    ])  # fmt: skip


def _security() -> str:
    client = client_tls_context()
    version = {ssl.TLSVersion.TLSv1_2: "TLS 1.2", ssl.TLSVersion.TLSv1_3: "TLS 1.3"}
    rows = [
        ("Storage SCU: lowest TLS version", version.get(client.minimum_version, "?")),
        ("Storage SCU: server certificate verified", str(client.verify_mode == ssl.CERT_REQUIRED)),
        ("Storage SCU: host name checked", str(client.check_hostname)),
    ]
    events = table(("Event",), [(e.value,) for e in AuditEventType])
    return "\n\n".join([prose.SECURITY, events, table(("TLS", "Value"), rows)])


def _charsets() -> str:
    written = sorted({str(o.SpecificCharacterSet) for _, _, o in objects.objects()})
    return prose.CHARSETS + "\n\n" + table(("Specific Character Set written",),
                                           [(w,) for w in written])  # fmt: skip


def _annexes() -> str:
    parts = ["### 9.1 IOD contents", prose.ANNEX_IOD]
    for number, (title, family, ds) in enumerate(objects.objects(), 1):
        parts += [f"#### 9.1.{number} {title}", objects.module_table(family, ds)]
    s = samples()
    parts += [
        "### 9.2 Data dictionary of private attributes", "None: no private attributes.",
        "### 9.3 Coded terminology and templates", "#### 9.3.1 Image SR", prose.ANNEX_SR,
        objects.content_tree(s.sr), "#### 9.3.2 Study SR", prose.ANNEX_STUDY_SR,
        objects.content_tree(s.study_sr), "#### 9.3.3 Codes and the private coding scheme",
        prose.ANNEX_CODES, objects.coding_scheme_table(),
        "Codes defined by rascore (`dicom_io/codes.py`, `dicom_io/sr/study_template.py`):",
        objects.codes_table(),
        "### 9.4 Grayscale image consistency and presentation states", prose.ANNEX_GSPS,
    ]  # fmt: skip
    return "\n\n".join(parts)


SECTIONS: tuple[Section, ...] = (
    ("1 Overview", "overview", lambda: prose.OVERVIEW + "\n\n" + network.sop_class_overview()),
    ("2 Table of contents", "contents", lambda: ""),
    ("3 Introduction", "introduction", lambda: prose.INTRODUCTION),
    ("4 Networking", "networking", _networking),
    ("5 Media interchange", "media", lambda: prose.MEDIA),
    ("6 Support of character sets", "charsets", _charsets),
    ("7 Security", "security", _security),
    ("8 Configuration", "configuration", configuration.settings_table),
    ("9 Annexes", "annexes", _annexes),
)


def _contents() -> str:
    lines = []
    for title, _, _ in SECTIONS:
        anchor = "".join(c for c in title.lower() if c.isalnum() or c in " -").replace(" ", "-")
        lines.append(f"- [{title}](#{anchor})")
    return "\n".join(lines)


def generate() -> str:
    """The whole statement as Markdown; the same text for the same code."""
    parts = [f"# {prose.TITLE}", prose.PREAMBLE]
    for title, key, body in SECTIONS:
        text = _contents() if key == "contents" else body()
        parts += [f"## {title}", text]
    return "\n\n".join(p.rstrip() for p in parts) + "\n"


def diff_summary(current: str, expected: str) -> str:
    """One line: how many lines differ, and the first of them."""
    changed = [
        line for line in difflib.unified_diff(current.splitlines(), expected.splitlines(), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]  # fmt: skip
    first = changed[0] if changed else ""
    return f"{len(changed)} line(s) differ; first: {first[:120]}"
