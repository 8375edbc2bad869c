"""``python -m o1e.eval ...`` is ``o1e eval ...``."""
import sys

from o1e.command import stage_main
from o1e.eval.stage import EVAL

if __name__ == "__main__":
    sys.exit(stage_main([EVAL], sys.argv[1:]))
