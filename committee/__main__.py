"""``python -m o1e.committee ...`` is ``o1e vote ...``."""
import sys

from o1e.command import stage_main
from o1e.committee.stage import VOTE

if __name__ == "__main__":
    sys.exit(stage_main([VOTE], sys.argv[1:]))
