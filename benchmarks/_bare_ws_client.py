"""A bare asyncio WebSocket client for SwarmUI: the ceiling a client can reach against a given server.

    python benchmarks/_bare_ws_client.py URL COUNT CONCURRENCY [--prefix TEXT]

Run as its own process by ``throughput.py`` (so it does not share a GIL with the server double).
``CONCURRENCY`` workers, each with its own session (opened before the clock starts), take the next of
``COUNT`` distinct prompts and generate it over ``GenerateText2ImageWS``: connect, send, read frames
until ``socket_intention: close``, base64-decode the image, close (not waiting for the server's answer).
Nothing else: no progress display, no post-processing, no files, no lock. Prints one JSON object:
``{"seconds": ..., "images": ...}``, the time from the first request to the last image.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from typing import Any

import httpx
from websockets.asyncio.client import connect

_closing: set[asyncio.Task[None]] = set()  # sockets being closed (see image_reference)


async def image_reference(ws_url: str, body: dict[str, Any]) -> str:
    """One generation over GenerateText2ImageWS: connect, send ``body``, read frames until
    ``socket_intention: close``, close. Returns the image's reference: a data URL (``donotsave``) or a View
    path ("" when no image came). No proxy lookup, as assetbuild's client makes it once per run.

    The close is not waited for: SwarmUI (and the double) answer it only after their pause for more
    requests, which no client needs to sit through (``closed()`` waits for them once the clock stopped)."""
    reference = ""
    ws = await connect(ws_url, max_size=None, ping_interval=None, compression=None, proxy=None)
    try:
        await ws.send(json.dumps(body))
        async for raw in ws:
            frame = json.loads(raw)
            if "error" in frame:
                raise SystemExit(f"the server answered {frame}")
            if "image" in frame:
                reference = frame["image"]
            if frame.get("socket_intention") == "close":
                break
    finally:
        task = asyncio.get_running_loop().create_task(ws.close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)
    return reference


async def closed() -> None:
    """Wait for the closes ``image_reference`` left running."""
    await asyncio.gather(*_closing, return_exceptions=True)


async def generate_all(url: str, count: int, concurrency: int, prefix: str) -> dict[str, float]:
    ws_url = "ws" + url.removeprefix("http") + "/API/GenerateText2ImageWS"
    async with httpx.AsyncClient(base_url=url) as http:
        sessions = [(await http.post("/API/GetNewSession", json={})).json()["session_id"]
                    for _ in range(concurrency)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    done = 0

    async def worker(session_id: str) -> None:
        nonlocal done
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            body = {"session_id": session_id, "prompt": f"{prefix} {i}", "seed": i, "model": "sd_xl_base_1.0",
                    "width": 256, "height": 256, "steps": 20, "images": 1, "donotsave": True}
            image = base64.b64decode((await image_reference(ws_url, body)).partition(",")[2])
            if not image.startswith(b"\x89PNG"):
                raise SystemExit("the bare client got no PNG")
            done += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(s) for s in sessions))
        seconds = time.perf_counter() - started
    finally:
        await closed()
    return {"seconds": seconds, "images": done}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("count", type=int)
    p.add_argument("concurrency", type=int)
    p.add_argument("--prefix", default="bare client image")
    args = p.parse_args()
    print(json.dumps(asyncio.run(generate_all(args.url, args.count, args.concurrency, args.prefix))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
