"""Reading the multipart form of `POST /v1/files`, with errors that say what was wrong.

Starlette's own `request.form()` treats a JSON body as an empty form ("missing 'purpose'"),
drops a file part whose body was cut off before the closing boundary ("missing 'file'"), and
reports an overlong part header as "Invalid multipart data."; here each gets its own message.
"""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from ftui.server.http.errors import bad_request, shorten
from ftui.server.jobs import naming

# One file name on the filesystems people download to; longer names cannot be saved as given.
MAX_FILENAME_BYTES = 255
# python-multipart's limit on one header line of a part (the filename lives in one).
PART_HEADER_BYTES = 4096 + 128


class _Parser(MultiPartParser):
    """Starlette's parser, noting whether the closing boundary arrived."""

    ended = False

    def on_end(self) -> None:
        self.ended = True


def require_multipart(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        shown = repr(shorten(content_type, 60)) if content_type else "none"
        raise bad_request(
            f"Uploads must be sent as multipart/form-data with the fields 'purpose' and 'file' "
            f"(the Content-Type was {shown}).",
            code="invalid_content_type",
        )


async def read_form(request: Request) -> FormData:
    """The form, or HTTPException(400) with a reason (uploads turn it into their message)."""
    parser = _Parser(request.headers, request.stream(), max_files=1, max_fields=16)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        cause = str(exc.__cause__ or "")
        if "header size" in cause.lower():
            detail = (
                f"a part's header line is longer than {PART_HEADER_BYTES} bytes (file names "
                f"may be at most {MAX_FILENAME_BYTES} bytes)."
            )
        else:
            detail = exc.message + (f" ({shorten(cause, 200)})" if cause else "")
        raise HTTPException(400, detail=detail) from None
    if not parser.ended:
        await form.close()
        raise HTTPException(
            400,
            detail="the body ended before the closing boundary: the upload was cut off; "
            "send it again.",
        )
    return form


def check_filename(filename: str) -> None:
    bad = naming.control_character(filename)
    if bad is not None:
        raise bad_request(
            f"The file name contains a control character ({bad[1]} at position {bad[0]}): "
            f"{shorten(repr(filename))}. Rename the file.",
            param="file",
            code="invalid_filename",
        )
    size = len(filename.encode("utf-8", "surrogatepass"))
    if size > MAX_FILENAME_BYTES:
        raise bad_request(
            f"The file name is {size} bytes long; the limit is {MAX_FILENAME_BYTES} bytes "
            f"(UTF-8): {shorten(repr(filename))}.",
            param="file",
            code="invalid_filename",
        )
