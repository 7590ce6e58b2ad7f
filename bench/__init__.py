"""Benchmark harness: refdesk against a plain Channels chat and a bare relay (issue 7).

Run `python -m bench.run` (or `make bench`); bench/README.md explains the output.
"""
