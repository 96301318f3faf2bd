"""Uploaded photos: the count and size limits, then the engine's decode."""

from __future__ import annotations

import time

from fastapi import UploadFile

from artefact.api.http.engine import Engine, PhotoInput
from artefact.api.http.errors import TooManyPhotos
from artefact.embed.errors import ImageTooLargeError


def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    """The upload's bytes, refused once past `max_bytes` (never more is read)."""
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"{upload.filename or 'photo'}: larger than the limit of {max_bytes} bytes")
    return data


def check_count(uploads: list[UploadFile], most: int, per: str = "at once") -> None:
    if len(uploads) > most:
        raise TooManyPhotos(f"{len(uploads)} photos sent; at most {most} {per}")


def prepare_photos(
    eng: Engine, uploads: list[UploadFile], max_bytes: int, local_features: bool = True
) -> tuple[list[PhotoInput], float]:
    """Decode each upload (typed image errors on bad ones); returns the photos and the milliseconds it took."""
    t0 = time.perf_counter()
    photos = [eng.prepare(read_upload(u, max_bytes), local_features=local_features) for u in uploads]
    for number, photo in enumerate(photos, start=1):
        photo.number = number
    return photos, (time.perf_counter() - t0) * 1e3
