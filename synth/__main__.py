"""``python -m o1e.synth prepare|run ...`` is ``o1e synth prepare|run ...``."""
import sys

from o1e.command import stage_main
from o1e.synth.stage import GROUP_HELP, PREPARE, SYNTH

if __name__ == "__main__":
    sys.exit(stage_main([PREPARE, SYNTH], sys.argv[1:], {"synth": GROUP_HELP}))
