"""A local S3-protocol server (moto's, in its own process) for the tests and benchmarks of the store on
object storage: ``with s3_server() as options: PipelinePersistence("s3://models/x", storage_options=options)``.

The server serves one request at a time. S3 makes a conditional PUT atomic (the check and the write are
one step); moto checks ``If-Match`` / ``If-None-Match`` and then writes, so its default threaded server
could let two racing requests both pass the check. Served in order, each request is atomic, as on S3.
"""

import contextlib
import os
import socket
import subprocess
import sys
import time

_SERVER = """
import sys
from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple
run_simple("127.0.0.1", int(sys.argv[1]), DomainDispatcherApplication(create_backend_app), threaded=False,
           request_handler=MotoRequestHandler)
"""


def free_port():
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def s3_server(bucket="models", timeout=60):
    """Start the server on 127.0.0.1 with ``bucket`` created; yield the s3fs ``storage_options``; stop it."""
    import s3fs

    port = free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", MOTO_PORT=str(port))
    process = subprocess.Popen([sys.executable, "-c", _SERVER, str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's S3 server did not start on 127.0.0.1:{port}") from None
                time.sleep(0.1)
        options = {"key": "testing", "secret": "testing",
                   "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"}}
        s3fs.S3FileSystem(**options, skip_instance_cache=True).call_s3("create_bucket", Bucket=bucket)
        yield options
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
