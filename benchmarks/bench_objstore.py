"""The store on object storage against raw fsspec, on one local S3-protocol server (moto, 127.0.0.1).

Save and load of a small pipeline-sized object and of a large array through ``PipelinePersistence("s3://...")``
against s3fs ``pipe_file`` / ``cat_file`` of the same bytes with their BLAKE3 digest (target <= 1.3x);
a cached second load against the local store's load (target <= 1.1x): by number, with ``manifest_ttl``
(the manifest from memory, the artifact from the digest-keyed cache: no request), and without it (the
default: the manifest is asked of the server again, one request). Run with ``make bench BENCH=objstore``.
"""

import io
import tempfile
import uuid

import joblib
import numpy as np

from benchmarks._timing import interleaved, ratio_table
from ml_toolbox.store import PipelinePersistence, _s3server
from ml_toolbox.store import _io as store_io

SIZES = {"1 MB": 1 << 20, "200 MB": 200 << 20}  # the sizes
REPEAT = 3


def _raw_put_get(fs, url, obj):
    def put():
        buffer = io.BytesIO()
        joblib.dump(obj, buffer)
        data = buffer.getvalue()
        store_io.digest_bytes(data, "blake3")
        fs.pipe_file(url, data)

    def get():
        data = fs.cat_file(url)
        store_io.digest_bytes(data, "blake3")
        return joblib.load(io.BytesIO(data))

    return put, get


def main():
    import s3fs

    rows, cached_rows = [], []
    with _s3server.s3_server("bench") as options, tempfile.TemporaryDirectory() as directory:
        fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
        for label, size in SIZES.items():
            obj = {"weights": np.random.default_rng(0).random(size // 8)}
            prefix = f"s3://bench/{uuid.uuid4().hex[:8]}"
            remote = PipelinePersistence(prefix, storage_options=options, cache_dir=False)
            cached = PipelinePersistence(prefix, storage_options=options, cache_dir=f"{directory}/cache",
                                         manifest_ttl=3600)
            asking = PipelinePersistence(prefix, storage_options=options, cache_dir=f"{directory}/cache")
            local = PipelinePersistence(f"{directory}/local-{label.replace(' ', '')}")
            put, get = _raw_put_get(fs, f"{prefix}-raw/blob", obj)
            put()
            remote.save(obj, "m")
            local.save(obj, "m")
            cached.load("m")  # fills the cache
            saves = interleaved({"store": lambda: remote.save(obj, "m"), "raw": put}, repeat=REPEAT)
            loads = interleaved({"store": lambda: remote.load("m", 1), "raw": get}, repeat=REPEAT)
            again = interleaved({"cached": lambda: cached.load("m", 1), "local": lambda: local.load("m", 1),
                                 "asking": lambda: asking.load("m", 1)}, repeat=REPEAT)
            rows += [(f"save {label}", (saves["store"], saves["raw"]), "<= 1.3x"),
                     (f"load {label}", (loads["store"], loads["raw"]), "<= 1.3x")]
            cached_rows.append((f"cached load {label}, manifest_ttl", (again["cached"], again["local"]), "<= 1.1x"))
            cached_rows.append((f"cached load {label}, default", (again["asking"], again["local"]), "<= 1.1x"))
    ratio_table(f"Store on S3 (moto, 127.0.0.1) vs raw s3fs put/get + BLAKE3, best of {REPEAT}", rows,
                columns=("store", "raw fsspec"), target=True)
    ratio_table("Cached second load vs the local store's load", cached_rows, columns=("cached", "local"),
                target=True)


if __name__ == "__main__":
    main()
