"""The generators of the evaluation sets in ``service/evaluation/sets/`` (see ``service.evaluation.sets``):
``python -m bench.handwriting fonts photos pad``. Each is seeded, so a run on the same fonts and browser makes the
same files."""
