"""`make bench` / `python -m benchmarks`: throughput, storage and memory of the engine on a
realistic disk image, against the machine's own limits and (when installed) restic and borg.

Not part of the test suite: numbers are written to docs/benchmarks.md.
"""
