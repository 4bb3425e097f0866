"""The ceiling: a bare aiohttp app answering POST /sms/inbound with a fixed small TwiML text.

`python -m bench.hello --port N`. It does not parse the form or check a signature: it measures
what aiohttp itself costs per request on this machine, in the same run as alertnet.
"""

from __future__ import annotations

import argparse

from aiohttp import web

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Ok</Message></Response>'


async def inbound(_request: web.Request) -> web.Response:
    return web.Response(text=TWIML, content_type="text/xml")


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/sms/inbound", inbound)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
