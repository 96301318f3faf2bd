"""`python -m artefact.api.cli`: the same as the `artefact` console script."""

import sys

from artefact.api.cli.main import main

# Guarded: decoder processes started with "spawn" re-import this module as __mp_main__.
if __name__ == "__main__":
    sys.exit(main())
