"""rh-extend: extend videos with RunningHub, orchestrated by Prefect, archived in S3."""

__version__ = "0.1.0"
