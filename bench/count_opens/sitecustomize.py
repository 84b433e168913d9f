"""Counts netCDF4 file opens of every Python process of a benchmarked run (issue #18).

``bench/readfloor.py --count-opens`` puts this folder first on the run's ``PYTHONPATH`` and
names a log in ``FLUXSCAPE_BENCH_OPENS_LOG``; each process (driver, Dask nannies and
workers) then appends one line per ``netCDF4.Dataset`` opened: ``<pid> <path>``. Python
imports ``sitecustomize`` at start-up by itself (the ``site`` module); without the
variable this does nothing. Benchmark tooling only, never imported by fluxscape.
"""

import os

_LOG = os.environ.get("FLUXSCAPE_BENCH_OPENS_LOG")

if _LOG:
    import netCDF4

    _real_init = netCDF4.Dataset.__init__

    def _counting_init(self, filename, *args, **kwargs):
        with open(_LOG, "a") as fh:  # one short append per open: atomic enough for counts
            fh.write(f"{os.getpid()} {filename}\n")
        _real_init(self, filename, *args, **kwargs)

    netCDF4.Dataset.__init__ = _counting_init
