"""dlt's ``sql_database`` source to the same S3 bucket, as a pull-based peer of the exporter.

Runs in the benchmark's own virtualenv (``.local/bench-venv``, created by export_bench.py with
``dlt[s3,sql_database,postgres,parquet]``): dlt is not a dependency of the product. Reads its
inputs from ``BENCH_DLT`` (JSON: dsn, schema, table, backend, bucket URL, S3 endpoint and admin
credentials, pipelines dir) and prints one JSON object: the seconds it took. dlt writes CSV
files (``loader_file_format="csv"``), the format the exporter writes, to the filesystem
destination, uncompressed; telemetry is off so the run needs no network beyond the local stack.
"""

from __future__ import annotations

import json
import os
import time


def main() -> None:
    job = json.loads(os.environ["BENCH_DLT"])
    os.environ.update(
        {
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "RUNTIME__LOG_LEVEL": "WARNING",
            # Plain CSV like the exporter's (dlt gzips filesystem files by default).
            "DATA_WRITER__DISABLE_COMPRESSION": "true",
            "DESTINATION__FILESYSTEM__BUCKET_URL": job["bucket_url"],
            "DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID": job["access_key_id"],
            "DESTINATION__FILESYSTEM__CREDENTIALS__AWS_SECRET_ACCESS_KEY": job["secret_access_key"],
            "DESTINATION__FILESYSTEM__CREDENTIALS__ENDPOINT_URL": job["endpoint_url"],
            "DESTINATION__FILESYSTEM__CREDENTIALS__REGION_NAME": job["region"],
        }
    )
    started = time.perf_counter()
    import dlt
    from dlt.sources.sql_database import sql_table

    source = sql_table(
        credentials=job["dsn"], schema=job["schema"], table=job["table"], backend=job["backend"]
    )
    pipeline = dlt.pipeline(
        pipeline_name=job["dataset"],
        destination="filesystem",
        dataset_name=job["dataset"],
        pipelines_dir=job["pipelines_dir"],
    )
    info = pipeline.run(source, loader_file_format="csv")
    info.raise_on_failed_jobs()
    # Rows are counted by the parent in the files written: dlt's normalize row_counts read 9x
    # the row count for these CSV loads (one per column, _dlt_id and _dlt_load_id included).
    print(json.dumps({"seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
