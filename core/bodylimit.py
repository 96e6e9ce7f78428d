"""A bound on every request body that reaches Django, before Django reads it.

Django's ASGI handler spools the whole body to a temporary file before any view runs, and
DATA_UPLOAD_MAX_MEMORY_SIZE does not count file parts; so without this, one POST of any size (signed in
or not: the CSRF check reads the form) costs the server that much disk and time. A Content-Length over
the bound is answered 413 at once; a body that streams past it is cut off and answered 413. /api and
/mcp keep their own, smaller bound (QMAILING_API_MAX_BODY_BYTES) on top of this one.
"""

from django.conf import settings

TOO_LARGE = (b"The request is larger than this server accepts "
             b"(QMAILING_WEB_MAX_BODY_BYTES). Attach less at a time.\n")


class BodyLimit:
    def __init__(self, app, limit=None):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit or settings.QMAILING_WEB_MAX_BODY_BYTES
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = False  # the server refuses a malformed length itself
            if too_large:
                return await _refuse(send)
        seen = 0
        refused = False

        async def bounded_receive():
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    await _refuse(send)
                    return {"type": "http.disconnect"}  # Django stops reading and answers nothing more
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        return await self.app(scope, bounded_receive, guarded_send)


async def _refuse(send):
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"),
                            (b"content-length", str(len(TOO_LARGE)).encode())]})
    await send({"type": "http.response.body", "body": TOO_LARGE})
