"""Reading one file from a multipart/form-data body, with a size limit.

The body is bounded before werkzeug parses it, so an oversized upload is
refused after at most max_bytes (plus the multipart framing) have been read.
"""
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request

from services.shared.errors import InvalidInput, MalformedRequest, TooLarge, UnsupportedType

# Room for boundaries, part headers and a few small text fields.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# werkzeug's multipart parser reads the body this much at a time and applies
# max_form_memory_size to its decoder's buffer, which holds one such read plus
# a possible partial boundary (< 100 bytes) kept from the read before, for file
# parts too. The limit must leave room for both, or an upload fails with 413
# whenever a read happens to end near a CR or LF byte.
MULTIPART_READ_BYTES = 64 * 1024
MAX_FORM_MEMORY_BYTES = MULTIPART_READ_BYTES + 4 * 1024


def read_upload(request: Request, field: str, max_bytes: int) -> bytes:
    """The bytes of the file sent as `field`: 415 if the body is not multipart,
    413 over max_bytes, 400 if the body is truncated, has no Content-Length,
    or lacks the field, 422 if the file is empty."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedType("Send the file as multipart/form-data.", code="UNSUPPORTED_MEDIA_TYPE")
    limit = max_bytes + MULTIPART_OVERHEAD_BYTES
    if request.content_length is None:
        # Without a length (chunked), werkzeug would read the body as empty.
        raise MalformedRequest("Send the upload with a Content-Length.", code="LENGTH_REQUIRED")
    if request.content_length > limit:
        raise TooLarge(details={"max_bytes": max_bytes})
    request.max_content_length = limit
    request.max_form_memory_size = MAX_FORM_MEMORY_BYTES
    request.max_form_parts = 20
    try:
        upload = request.files.get(field)
    except RequestEntityTooLarge:
        raise TooLarge(details={"max_bytes": max_bytes}) from None
    except (HTTPException, ValueError):
        raise MalformedRequest("The multipart body could not be read.", code="MALFORMED_MULTIPART") from None
    if upload is None:
        raise MalformedRequest(
            f"Send the file in the multipart field '{field}'.", code="MALFORMED_MULTIPART",
            details={field: ["Missing."]},
        )
    data = upload.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(details={"max_bytes": max_bytes})
    if not data:
        raise InvalidInput("The file is empty.", code="EMPTY_FILE", details={field: ["Empty."]})
    return data
