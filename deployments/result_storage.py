"""S3 result storage for the deployments' runs: a prefect-aws `S3Bucket` block every worker reads.

Every run of the deployments persists its result (`RUN_ENV`). Without more configuration Prefect
writes it under the PREFECT_HOME of the machine that ran it, which is enough on one machine.
With workers on several machines a batch with `dispatch=deployment` reads the results of child
runs that ran elsewhere, so point Prefect's default result storage at S3:

    python -m rh_extend.deployments.result_storage --bucket my-bucket     # once, anywhere
    # then, in every worker's environment (process workers pass it on to their runs):
    export PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK=s3-bucket/rh-extend-results

The block holds the bucket and folder only; credentials and endpoint come from each worker's
environment (boto3's chain: AWS_* variables, AWS_ENDPOINT_URL_S3, profile, instance role), as for
the archive.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

BLOCK_NAME = "rh-extend-results"
BLOCK_TYPE = "s3-bucket"
SETTING = "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"
FOLDER = "prefect-results"


def block_slug(name: str = BLOCK_NAME) -> str:
    """What PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK names: `s3-bucket/<block name>`."""
    return f"{BLOCK_TYPE}/{name}"


def save_s3_result_storage(bucket: str, folder: str, name: str = BLOCK_NAME) -> str:
    """Create (or update) the S3Bucket block in the Prefect API of this environment; its slug."""
    from prefect_aws import S3Bucket

    S3Bucket(bucket_name=bucket, bucket_folder=folder).save(name, overwrite=True)
    return block_slug(name)


def main(argv: Sequence[str] | None = None) -> None:
    from rh_extend.settings import load_settings

    settings = load_settings()
    parser = argparse.ArgumentParser(
        prog="python -m rh_extend.deployments.result_storage",
        description="Save the S3Bucket block that workers use as Prefect's result storage.",
    )
    parser.add_argument("--bucket", default=settings.s3_bucket, help="default: RH_EXTEND_S3_BUCKET")
    parser.add_argument(
        "--folder",
        default=f"{settings.s3_prefix}/{FOLDER}",
        help=f"key prefix of the results (default: <RH_EXTEND_S3_PREFIX>/{FOLDER})",
    )
    parser.add_argument("--name", default=BLOCK_NAME, help="block name")
    args = parser.parse_args(argv)
    if not args.bucket:
        parser.error("--bucket is required when RH_EXTEND_S3_BUCKET is not set")
    slug = save_s3_result_storage(args.bucket, args.folder, args.name)
    print(f"saved {slug}: s3://{args.bucket}/{args.folder}/")
    print(f"set on every worker: {SETTING}={slug}")


if __name__ == "__main__":
    main()
