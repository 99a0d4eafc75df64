"""Pictures as they are published: upright, and without their metadata.

A phone photo's EXIF block tells where it was taken (GPS), when, and with
which device; PNG text chunks and WebP EXIF/XMP can carry the same. Every
JPEG, PNG and WebP upload is decoded and encoded again with Pillow, turned
upright as its EXIF Orientation says (so nothing is lost by dropping the
tag), and written with no metadata but its colour profile. GIFs carry no
EXIF and are kept as sent (re-encoding would flatten their animation).

Decoding is bounded: a picture of more than MAX_PIXELS is refused before its
pixels are allocated (a small file can declare a huge canvas).
"""
import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from services.shared.errors import InvalidInput

MAX_PIXELS = 50_000_000  # a 50-megapixel photo; phones take 12 to 48
JPEG_QUALITY = 90
_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


def without_metadata(data: bytes, content_type: str) -> bytes:
    """data re-encoded upright with no EXIF, XMP or text metadata (GIFs unchanged)."""
    if content_type not in _FORMATS:
        return data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_FORMATS[content_type]]) as image:
                _check_size(image)
                return _encode(image, content_type)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
            Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput("The picture could not be read.", code="INVALID_IMAGE",
                           details={"file": ["Unreadable or too large a picture."]}) from None


def _check_size(image: Image.Image) -> None:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ValueError("too many pixels")


def _encode(image: Image.Image, content_type: str) -> bytes:
    profile = image.info.get("icc_profile")
    out = io.BytesIO()
    if getattr(image, "is_animated", False):  # an animated WebP: every frame, no metadata
        image.save(out, "WEBP", save_all=True, lossless=False, quality=JPEG_QUALITY, icc_profile=profile)
        return out.getvalue()
    upright = ImageOps.exif_transpose(image)
    if content_type == "image/jpeg":
        if upright.mode not in ("RGB", "L", "CMYK"):
            upright = upright.convert("RGB")
        upright.save(out, "JPEG", quality=JPEG_QUALITY, icc_profile=profile)
    elif content_type == "image/png":
        upright.save(out, "PNG", icc_profile=profile)
    else:
        upright.save(out, "WEBP", quality=JPEG_QUALITY, icc_profile=profile)
    return out.getvalue()
