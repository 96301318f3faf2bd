"""The `artefact` command: thin subcommands over the index and embed layers (entry point `main`)."""

import os

# Before torch/faiss load (the command modules import them): idle OpenMP threads sleep instead of
# spinning. Spinning threads starve the decoder processes and any other work on a small machine
# (benchmarks/README.md: a single embed went from ~50 ms to 1-2.6 s without this). OpenMP reads
# the variable once, when its library loads, so it is set on importing this package.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from artefact.api.cli.main import main  # noqa: E402 - after the environment is set

__all__ = ["main"]
