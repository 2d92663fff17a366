"""DICOM hand radiographs with a rascore label table (``rascore site import --dicom``).

The table's ``image`` is a SOP Instance UID or a file name. The folder's patient is a keyed
hash of the header's Patient ID (worker.lab.site.pseudonym); the hand comes from Image
Laterality / Laterality, or from the table when the header has none. The files are copied with
the patient's identity replaced by the pseudonym (:func:`write_deidentified`): a site folder is
shared with whoever trains or validates, and nothing there needs to know who the patient is.
Nothing here logs or reports a Patient ID or name.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset, dcmwrite

from dicom_io.reading import NotDicom, UnreadableImage, read_dicom
from dicom_io.reading.geometry import laterality
from worker.lab.site.plan import Plan, PlannedImage
from worker.lab.site.pseudonym import key_id, pseudonym
from worker.lab.site.rascore_table import TableRow, label_of, read_rows

log = logging.getLogger(__name__)

#: Attributes that say who the patient is, or lead back to them; removed from the copies
#: (Patient Name and ID are replaced by the pseudonym). Pixels are not touched: burned-in
#: annotations are the site's to avoid.
IDENTIFYING = (
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "IssuerOfPatientID",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientBirthDate",
    "PatientBirthTime",
    "MedicalRecordLocator",
    "AccessionNumber",
    "ReferringPhysicianName",
    "InstitutionAddress",
)


@dataclass(frozen=True)
class DicomHeader:
    path: Path
    relative: str
    sop_instance_uid: str
    patient_id: str  #: kept in memory only, to be hashed
    laterality: str  #: L, R, B or U


def _text(ds: Dataset, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "").strip()
    except Exception:  # a mangled value reads as absent
        return ""


def scan(folder: Path, labels: Path) -> tuple[list[DicomHeader], dict[str, str]]:
    """The DICOM files under ``folder`` (headers only), and why the others cannot be read."""
    headers: list[DicomHeader] = []
    unreadable: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative.startswith(".") or "/." in relative or path.resolve() == labels.resolve():
            continue
        try:
            ds = read_dicom(path, pixels=False)
        except NotDicom:
            unreadable[relative] = "not a DICOM file"
            continue
        except (OSError, UnreadableImage) as exc:
            unreadable[relative] = str(exc).replace(str(path), relative)
            continue
        headers.append(
            DicomHeader(
                path, relative, _text(ds, "SOPInstanceUID"), _text(ds, "PatientID"), laterality(ds)
            )
        )
    return headers, unreadable


def _resolve(headers: list[DicomHeader]) -> dict[str, DicomHeader]:
    """Table ``image`` → file: SOP Instance UID, relative path, or a file name used once."""
    names: dict[str, list[DicomHeader]] = defaultdict(list)
    for h in headers:
        names[h.path.name].append(h)
    found = {name: hs[0] for name, hs in names.items() if len(hs) == 1}
    found.update({h.relative: h for h in headers})
    found.update({h.sop_instance_uid: h for h in headers if h.sop_instance_uid})
    return found


def _identity(
    header: DicomHeader, rows: list[TableRow], key: bytes, where: str
) -> tuple[str, str] | str:
    """(pseudonym, hand) of the image, or what is wrong. Never names the Patient ID."""
    given = {r.patient for r in rows if r.patient}
    if header.patient_id and given and given != {header.patient_id}:
        return f"{where}: the table's patient does not match {header.relative}'s Patient ID"
    patient_id = header.patient_id or (given.pop() if len(given) == 1 else "")
    if not patient_id:
        return f"{where}: {header.relative} has no Patient ID and the table gives none"
    if header.laterality == "B":
        return f"{where}: {header.relative} shows both hands; a site image holds one"
    hands = {r.hand for r in rows if r.hand}
    if header.laterality in ("L", "R") and hands - {header.laterality}:
        return f"{where}: hand {'/'.join(sorted(hands))} but {header.relative} says " + (
            header.laterality
        )
    hand = header.laterality if header.laterality in ("L", "R") else "".join(hands)
    if hand not in ("L", "R"):
        return f"{where}: {header.relative} has no laterality and the table gives no hand"
    return pseudonym(key, patient_id), hand


def _graded_twice(rows: list[TableRow], name: str) -> list[str]:
    """A joint one reader graded twice under two names of the file (its UID and its name)."""
    seen: dict[tuple[str, str], int] = {}
    problems = []
    for row in rows:
        first = seen.setdefault((row.joint, row.reader), row.line)
        if first != row.line:
            problems.append(
                f"{name}:{row.line}: {row.joint} by {row.reader} already on line {first}"
            )
    return problems


def plan_dicom(folder: Path, labels: Path, key: bytes, default_reader: str) -> Plan:
    """The import of DICOM files labelled by a rascore table; every problem is collected."""
    plan = Plan("dicom")
    rows = read_rows(labels, default_reader, plan.errors, dicom=True)
    headers, unreadable = scan(folder, labels)
    resolve = _resolve(headers)
    named = {Path(relative).name: relative for relative in unreadable}
    wanted: set[str] = set()
    by_file: dict[str, list[TableRow]] = defaultdict(list)
    for row in rows:
        header = resolve.get(row.image)
        if header is not None:
            by_file[header.relative].append(row)
        elif row.image in unreadable or row.image in named:
            relative = row.image if row.image in unreadable else named[row.image]
            plan.errors.append(f"{labels.name}:{row.line}: {relative}: {unreadable[relative]}")
            wanted.add(relative)
        else:
            plan.errors.append(
                f"{labels.name}:{row.line}: no DICOM file or SOP Instance UID "
                f"{row.image!r} in {folder}"
            )
    taken: dict[str, int] = defaultdict(int)
    for header in sorted(headers, key=lambda h: (h.sop_instance_uid, h.relative)):
        ours = by_file.get(header.relative)
        if not ours:
            plan.skip(header.relative, "no rows in the table")
            continue
        identity = _identity(header, ours, key, f"{labels.name}:{ours[0].line}")
        if isinstance(identity, str):
            plan.errors.append(identity)
            continue
        twice = _graded_twice(ours, labels.name)
        if twice:
            plan.errors.extend(twice)
            continue
        patient, hand = identity
        taken[f"{patient}-{hand}H"] += 1
        n = taken[f"{patient}-{hand}H"]
        image_id = f"{patient}-{hand}H" + (f"-{n}" if n > 1 else "")
        plan.images.append(PlannedImage(image_id, header.path, patient, hand, dicom=True))
        plan.labels.extend(label_of(r, image_id, patient, hand) for r in ours)
    for relative, why in unreadable.items():
        if relative not in wanted:
            plan.skip(relative, why)
    plan.source = {
        "format": "dicom",
        "labels": labels.name,
        "reader": default_reader,
        "pseudonyms": "HMAC-SHA-256 of the Patient ID",
        "key_id": key_id(key),
    }
    log.info("DICOM import: %d files, %d labelled", len(headers), len(plan.images))
    return plan


def write_deidentified(source: Path, dest: Path, patient: str) -> None:
    """Copy a DICOM file with the patient's name and ID replaced by ``patient`` and the other
    identifying attributes (:data:`IDENTIFYING`) removed; pixels and everything else as given."""
    ds = read_dicom(source)
    ds.PatientName = patient
    ds.PatientID = patient
    for keyword in IDENTIFYING:
        if keyword in ds:
            delattr(ds, keyword)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "rascore site import: patient pseudonymised (keyed hash)"
    dcmwrite(dest, ds, enforce_file_format=True)
