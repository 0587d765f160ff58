"""Benchmarks of rh-extend against a plain floor (`make bench` → docs/benchmarks.md).

Not part of `make test`. Every comparison runs its clients in fresh processes against servers
in other processes (RunningHub sandbox + moto S3 in one, `prefect server start` in another), so
the process being measured holds nothing but the code under test.
"""
