"""A tiny stand-in for ``POST /v1/phota/generate`` that answers with four photo-sized 4K outputs.

The emulator's 4K images are synthetic gradients that PNG compresses to about 0.3 MB; a 4096x4096 photo is
20-30 MB as PNG. This server answers the same contract (``bytes`` mode: base64 images in JSON; ``urls`` mode:
download URLs) with four incompressible 24 MiB payloads, so the memory benchmark also sees realistic sizes. It is
used only by ``benchmarks.output_memory``; run as ``python -m benchmarks._image_server --size-mib 24``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal

from aiohttp import web

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def build(size_mib: int, count: int = 4) -> tuple[list[bytes], bytes]:
    blobs = [PNG_SIGNATURE + os.urandom(size_mib * 1024 * 1024 - len(PNG_SIGNATURE)) for _ in range(count)]
    body = {
        "images": [base64.b64encode(blob).decode("ascii") for blob in blobs],
        "download_urls": [],
        "known_subjects": {"counts": {}},
    }
    return blobs, json.dumps(body).encode()


async def serve(port: int, size_mib: int) -> None:
    blobs, bytes_body = build(size_mib)

    async def generate(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("response_mode") == "bytes":
            return web.Response(body=bytes_body, content_type="application/json")
        base = f"http://{request.host}"
        urls = [f"{base}/cdn/bench/{index}.png?token=t&expires=9999999999" for index in range(len(blobs))]
        return web.json_response({"images": [], "download_urls": urls, "known_subjects": {"counts": {}}})

    async def download(request: web.Request) -> web.Response:
        blob = blobs[int(request.match_info["index"])]
        return web.Response(body=blob, content_type="image/png")

    app = web.Application(client_max_size=1024**2)
    app.router.add_post("/v1/phota/generate", generate)
    app.router.add_get("/cdn/bench/{index}.png", download)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"Image server listening on http://127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--size-mib", type=int, default=24)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.size_mib))


if __name__ == "__main__":
    main()
