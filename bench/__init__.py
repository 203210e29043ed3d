"""Benchmarks of ocish against runc and crun: `python3 bench/run.py --help`."""
