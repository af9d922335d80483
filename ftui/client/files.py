"""``client.files``: list, upload (streamed from disk), read, download, preview and delete."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ftui.client.errors import APIConnectionError, APIError
from ftui.client.transport import seg
from ftui.types import Deleted, FileObject

if TYPE_CHECKING:
    from ftui.client._client import Client

PREVIEW_BYTES = 64 << 10


class Files:
    CHUNK = 1 << 20

    def __init__(self, client: Client):
        self._c = client

    async def list(self, purpose: str | None = None) -> list[FileObject]:
        """All files, newest first (every page)."""
        c = self._c
        out = [
            FileObject.from_api(d)
            async for data in c._transport.pages("/files", {"purpose": purpose})
            for d in data
        ]
        out.sort(key=lambda f: f.created_at or 0, reverse=True)
        if c.cache is not None and purpose is None:
            await c._cache_do(c.cache.put_files, out, complete=True)
        return out

    async def create(
        self,
        path: str | os.PathLike[str],
        purpose: str = "fine-tune",
        *,
        filename: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> FileObject:
        """Upload a file, streamed from disk (any size; memory stays at one chunk).

        ``on_progress(sent, total)`` is called as bytes go out (it starts again from 0 if the
        upload has to be retried after a connect error or a 429/5xx answer).
        """
        path = Path(path)
        size = path.stat().st_size
        name = filename or path.name
        boundary = uuid.uuid4().hex
        safe = name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n'
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{safe}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        total = len(head) + size + len(tail)

        async def body() -> AsyncIterator[bytes]:
            sent = 0

            def progress(n: int) -> None:
                nonlocal sent
                sent += n
                if on_progress:
                    on_progress(min(sent, total), total)

            yield head
            progress(len(head))
            with open(path, "rb") as fh:
                remaining = size
                while remaining > 0:
                    chunk = await asyncio.to_thread(fh.read, min(self.CHUNK, remaining))
                    if not chunk:
                        raise APIError(f"{path} shrank while it was being uploaded")
                    remaining -= len(chunk)
                    yield chunk
                    progress(len(chunk))
            yield tail
            progress(len(tail))

        data = await self._c._transport.json(
            "POST",
            "/files",
            content=body,
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(total),
            },
            idempotent=False,
        )
        f = FileObject.from_api(data)
        if self._c.cache is not None:
            await self._c._cache_do(self._c.cache.put_files, [f])
        return f

    async def retrieve(self, file_id: str) -> FileObject:
        return FileObject.from_api(await self._c._transport.json("GET", f"/files/{seg(file_id)}"))

    async def content(self, file_id: str, path: str | os.PathLike[str] | None = None) -> Any:
        """The file's bytes; or, with ``path``, streamed to that file (atomically) → Path."""
        t = self._c._transport
        if path is None:
            response = await t.send("GET", f"/files/{seg(file_id)}/content")
            return response.content
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        attempt = 0
        try:
            while True:
                response = await t.send("GET", f"/files/{seg(file_id)}/content", stream=True)
                try:
                    with open(tmp, "wb") as fh:
                        async for chunk in response.aiter_bytes(self.CHUNK):
                            await asyncio.to_thread(fh.write, chunk)
                    break
                except httpx.TransportError as exc:
                    error = APIConnectionError(f"download of {file_id} broke: {type(exc).__name__}")
                    if attempt >= t.max_retries:
                        raise error from None
                    delay = t.backoff.delay(attempt)
                    attempt += 1
                    t.notify(attempt, delay, error, f"download {file_id}")
                    await asyncio.sleep(delay)
                finally:
                    await response.aclose()
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, target)
        return target

    async def head(self, file_id: str, limit: int = PREVIEW_BYTES) -> tuple[bytes, bool]:
        """The first ``limit`` bytes of a file and whether there is more (for previews).

        Reading stops once it has enough, so a preview of a file of several GB costs ``limit``.
        """
        response = await self._c._transport.send(
            "GET", f"/files/{seg(file_id)}/content", stream=True
        )
        buf = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                buf += chunk
                if len(buf) > limit:
                    break
        except httpx.TransportError as exc:
            raise APIConnectionError(f"preview of {file_id} broke: {type(exc).__name__}") from None
        finally:
            await response.aclose()
        return bytes(buf[:limit]), len(buf) > limit

    async def delete(self, file_id: str) -> Deleted:
        data = await self._c._transport.json("DELETE", f"/files/{seg(file_id)}")
        result = Deleted.from_api(data)
        if self._c.cache is not None:
            await self._c._cache_do(self._c.cache.remove_file, file_id)
        return result
