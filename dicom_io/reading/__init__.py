"""Read a radiograph into a display-ready grey-scale array with its geometry.

The scorer must see the same picture a radiologist sees on a viewer: bone bright whatever the
photometric interpretation, windowed as the modality intended. So the reader applies, in the
order of PS3.4 N.2 (the grey-scale pipeline):

1. the Modality LUT: Rescale Slope / Intercept, or the Modality LUT Sequence;
2. the VOI: the file's first window (Window Center / Width with its VOI LUT Function), or its
   first VOI LUT Sequence item, or, when the file has neither, a robust window from the
   histogram of the anatomy (air and collimation left out);
3. the MONOCHROME1 / Presentation LUT Shape INVERSE inversion, so bone is bright.

Decoding covers what a PACS sends for CR and DX: implicit and explicit little endian, explicit
big endian, deflated, JPEG baseline and extended (12-bit), JPEG lossless (process 14 and SV1),
JPEG-LS lossless and near-lossless, JPEG 2000 lossless and lossy (and HTJ2K), RLE.

Nothing is decoded on trust: before a decoder runs, the compressed frame's own header must
agree with Rows, Columns, Samples per Pixel and Bits Allocated, which are bounded by
:data:`MAX_PIXELS` and :data:`MAX_SIDE`; a deflated data set is inflated through a decompressor
capped at what its header's image needs; dcmtk's decoders run under a memory and a time limit.

Anything that cannot become such a picture is rejected with a subclass of
:class:`UnreadableImage` whose message is one line saying why; the command line and the SCP
pass it on as it is.

The modules, in the order a file goes through them: ``load`` (the data set, capped inflate,
the checks before decoding, and :func:`check_bounds` on arrival), ``frames`` (compressed frame
headers), ``decode`` (pydicom's plugins and dcmtk), ``voi`` (Modality LUT, VOI, histogram
window), ``geometry`` (spacing, laterality) and ``greyscale`` (:func:`read_radiograph`);
``errors`` holds the refusals. The package imports pydicom and numpy, never another
``dicom_io`` package, ``scoring`` or ``worker``.
"""

from dicom_io.reading.decode import DCMTK_MEMORY_MB, DCMTK_TIMEOUT_S
from dicom_io.reading.errors import (
    MAX_PIXELS,
    MAX_SIDE,
    ColourImage,
    CorruptImage,
    ImageTooLarge,
    ImplausibleSpacing,
    MissingDecoder,
    MultiFrameImage,
    NoPixelData,
    NotARadiograph,
    NotDicom,
    UnreadableImage,
    UnsupportedPixelFormat,
    UnsupportedTransferSyntax,
)
from dicom_io.reading.geometry import PLAUSIBLE_SPACING_MM
from dicom_io.reading.greyscale import GreyscaleImage, read_radiograph
from dicom_io.reading.load import ACCEPTED_SOP_CLASSES, MAX_INFLATED, check_bounds, read_dicom
from dicom_io.reading.voi import HISTOGRAM_PERCENTILES, VoiPreference

__all__ = [
    "ACCEPTED_SOP_CLASSES",
    "DCMTK_MEMORY_MB",
    "DCMTK_TIMEOUT_S",
    "HISTOGRAM_PERCENTILES",
    "MAX_INFLATED",
    "MAX_PIXELS",
    "MAX_SIDE",
    "PLAUSIBLE_SPACING_MM",
    "ColourImage",
    "CorruptImage",
    "GreyscaleImage",
    "ImageTooLarge",
    "ImplausibleSpacing",
    "MissingDecoder",
    "MultiFrameImage",
    "NoPixelData",
    "NotARadiograph",
    "NotDicom",
    "UnreadableImage",
    "UnsupportedPixelFormat",
    "UnsupportedTransferSyntax",
    "VoiPreference",
    "check_bounds",
    "read_dicom",
    "read_radiograph",
]
