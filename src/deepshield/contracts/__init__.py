"""Typed records that cross packages (the bottom floor: imports only the standard library, numpy and
:mod:`deepshield.errors`).

- :mod:`deepshield.contracts.crops`: :class:`CropSettings`, how a face is cut out of a frame; one
  definition used by preprocess, datasets, predict, export and the checkpoint.
- :mod:`deepshield.contracts.rows`: evaluation rows and sanity checks, what results.json holds.
- :mod:`deepshield.contracts.alarm`: the alarm report of a randomized-defense check.
"""
