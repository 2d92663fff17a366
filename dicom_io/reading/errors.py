"""Why an object cannot be read as a radiograph: the :class:`UnreadableImage` family.

Each refusal is one line that says why; ``reason`` on each class is a short stable code for
logs and statuses. The memory bound lives here because :class:`ImageTooLarge` is defined by it.
"""

from __future__ import annotations

from typing import ClassVar

from pydicom import Dataset

#: Memory bound, checked on the header before anything is decoded: 80 megapixels (320 MB as
#: float32) and 10,000 pixels a side. The largest CR plates and DX detectors are ~4,300 a side.
MAX_PIXELS = 80_000_000
MAX_SIDE = 10_000

BOUND = f"beyond the bound of {MAX_SIDE} pixels a side and {MAX_PIXELS / 1e6:.0f} megapixels"


class UnreadableImage(ValueError):
    """The object is not a single-frame grey-scale radiograph this node can decode.

    The message is one line that says why. Subclasses say which kind of refusal it is.
    """

    reason: ClassVar[str] = "unreadable"


class NotDicom(UnreadableImage):
    """The bytes are not a DICOM file (garbage, another format)."""

    reason = "not-dicom"


class CorruptImage(UnreadableImage):
    """A DICOM file that is truncated or whose header or pixel data cannot be parsed."""

    reason = "corrupt"


class NotARadiograph(UnreadableImage):
    """A SOP class other than CR, DX (either) or Secondary Capture."""

    reason = "sop-class"


class NoPixelData(UnreadableImage):
    """No Pixel Data (7FE0,0010) at all."""

    reason = "no-pixel-data"


class ColourImage(UnreadableImage):
    """Colour or palette image: more than one sample per pixel, or not MONOCHROME1/2."""

    reason = "colour"


class MultiFrameImage(UnreadableImage):
    """More than one frame; a radiograph is one."""

    reason = "multi-frame"


class ImageTooLarge(UnreadableImage):
    """Beyond the memory bound: Rows × Columns, or what a compressed frame's own header
    claims, over :data:`MAX_PIXELS` or :data:`MAX_SIDE`, or a deflated data set inflating beyond
    what its image needs. The message starts "image too large" (the job's reason shows it)."""

    reason = "too-large"


class ImplausibleSpacing(ImageTooLarge):
    """A pixel spacing over the :data:`PLAUSIBLE_SPACING_MM` bound: 4 mm on a 4,000² image is
    an image 16 metres wide, and anything that works in millimetres (a detector's working
    image) would be eight times the stored one a side. Raised by :func:`check_bounds` only;
    :func:`read_radiograph` passes such a spacing over as if absent."""


class UnsupportedPixelFormat(UnreadableImage):
    """Bits Allocated other than 8, 16 or 32, float pixel data, or a missing pixel attribute."""

    reason = "pixel-format"


class UnsupportedTransferSyntax(UnreadableImage):
    """No decoder exists at all for the transfer syntax (video, or an unknown UID)."""

    reason = "transfer-syntax"


class MissingDecoder(UnreadableImage):
    """A decoder exists for the transfer syntax but is not installed here.

    ``decoder`` names what would decode it (a Python package or a dcmtk tool).
    """

    reason = "missing-decoder"

    def __init__(self, message: str, decoder: str) -> None:
        super().__init__(message)
        self.decoder = decoder


def one_line(exc: BaseException | str) -> str:
    text = exc if isinstance(exc, str) else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def header_int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise UnsupportedPixelFormat(f"{keyword} is missing, so the pixels cannot be decoded")
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise CorruptImage(f"{keyword} {value!r} is not an integer") from exc
