"""``python -m o1e.train ...`` is ``o1e train ...``."""
import sys

from o1e.command import stage_main
from o1e.train.stage import TRAIN

if __name__ == "__main__":
    sys.exit(stage_main([TRAIN], sys.argv[1:]))
