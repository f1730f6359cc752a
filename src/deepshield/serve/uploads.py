"""Uploads: a multipart body streamed to a file the server names, the size limit enforced while it
streams, and the content checked by decoding it (never by the client's file name or extension).

    >>> name = await receive_upload(request, folder / "upload.bin", limit_bytes=200_000_000)
    >>> media = check_media(folder / "upload.bin")      # renamed upload.png / upload.mp4, decodable
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from deepshield.data.video import IMAGE_EXTENSIONS, NotAVideoError, VideoError, read_media

FIELD = "file"                     # the multipart field that carries the media
DRAIN_BYTES = 8_000_000            # read (and drop) this much past the limit, so the client sees the 413
_ENVELOPE_BYTES = 64_000           # multipart headers and boundaries around the file


class UploadError(Exception):
    """An upload the server refuses: ``status`` (4xx) and a one-line message for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def too_large(limit_bytes: int) -> UploadError:
    return UploadError(413, f"the file is larger than this server's upload limit of {limit_bytes / 1e6:g} "
                            "MB; upload a shorter clip or start the server with a larger --max-upload-mb")


class _FilePart:
    """python-multipart callbacks that copy the ``file`` field's bytes to ``dest``, counting them."""

    def __init__(self, dest: Path, limit_bytes: int) -> None:
        self.dest, self.limit = dest, limit_bytes
        self.out = None
        self.size = 0
        self.found = False
        self.over = False
        self.filename = ""
        self._header: list[bytes] = [b"", b""]
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_header_field": self._field, "on_header_value": self._value,
                "on_header_end": self._header_end, "on_headers_finished": self._headers_done,
                "on_part_data": self._data, "on_part_end": self._end}

    def _begin(self) -> None:
        self._headers = {}

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header[0] += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header[1] += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header[0].strip().lower()] = self._header[1].strip()
        self._header = [b"", b""]

    def _headers_done(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") == FIELD.encode() and not self.found and params.get(b"filename") is not None:
            self.found = True
            self.filename = display_name(params[b"filename"].decode("utf-8", "replace"))
            self.out = self.dest.open("wb")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.out is None or self.over:
            return
        self.size += end - start
        if self.size > self.limit:
            self.over = True
            return
        self.out.write(data[start:end])

    def _end(self) -> None:
        self.close()

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None


async def receive_upload(headers: dict[str, str], body: AsyncIterator[bytes], dest: Path,
                         limit_bytes: int) -> str:
    """Stream a multipart body's ``file`` field into ``dest``; the client's file name (for display only).

    Raises ``UploadError``: 400 not multipart or no file field, 413 over ``limit_bytes`` (refused from
    Content-Length before reading, or as soon as the streamed bytes pass the limit)."""
    kind, params = parse_options_header(headers.get("content-type", ""))
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadError(400, "send the video or image as multipart/form-data in a field named 'file'")
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes + _ENVELOPE_BYTES:
        raise too_large(limit_bytes)
    part = _FilePart(dest, limit_bytes)
    parser = MultipartParser(params[b"boundary"], part.callbacks())
    try:
        drained = 0
        async for chunk in body:
            if part.over:  # let the client finish sending a little, so it reads the 413 instead of a reset
                drained += len(chunk)
                if drained > DRAIN_BYTES:
                    break
                continue
            parser.write(chunk)
        if not part.over:
            parser.finalize()
    except UploadError:
        raise
    except OSError:
        raise UploadError(507, "the server could not store the upload (its temporary folder is full?)") \
            from None
    except Exception as err:  # python-multipart's parse errors: a malformed body
        raise UploadError(400, f"malformed multipart body ({type(err).__name__}); send the file as "
                               "multipart/form-data in a field named 'file'") from None
    finally:
        part.close()
    if part.over:
        raise too_large(limit_bytes)
    if not part.found:
        raise UploadError(400, "no file in the upload; send it in a multipart field named 'file'")
    if part.size == 0:
        raise UploadError(400, f"{part.filename or 'the upload'} is empty (0 bytes)")
    return part.filename


def display_name(name: str) -> str:
    """The client's file name reduced to a harmless label (no folders, no control characters)."""
    base = re.split(r"[\\/]", name)[-1]
    return re.sub(r"[\x00-\x1f\x7f]", "", base)[:120] or "upload"


# A decode failure -> the HTTP status: not media at all is 415, damaged or unusable media 422.
_STATUS = {NotAVideoError: 415}


def check_media(path: Path) -> Path:
    """Decode the upload's first sampled frame; rename it so ``read_media`` treats it as what it is.

    Returns the new path (``upload.<image format>`` for images PIL reads, ``upload.mp4`` otherwise).
    Raises ``UploadError`` 415 (not a video or image) or 422 (damaged, empty or unusable)."""
    try:
        with Image.open(path) as img:
            suffix = f".{(img.format or 'png').lower()}"
        suffix = suffix if suffix in IMAGE_EXTENSIONS else ".png"   # read_image sniffs the content anyway
    except UnidentifiedImageError:
        suffix = ".mp4"                                              # PyAV sniffs any container
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise UploadError(422, f"unusable image: {err}") from None
    media = path.rename(path.with_suffix(suffix))
    frames = read_media(media, num_frames=1)
    try:
        next(frames)
    except StopIteration:
        raise UploadError(422, "no frame could be decoded from the upload") from None
    except VideoError as err:
        status = next((s for cls, s in _STATUS.items() if isinstance(err, cls)), 422)
        raise UploadError(status, f"cannot read the upload: {err}; upload a video or an image "
                                  "(mp4, mov, webm, jpg, png ...)") from None
    finally:
        frames.close()
    return media


__all__ = ["FIELD", "UploadError", "check_media", "display_name", "receive_upload", "too_large"]
