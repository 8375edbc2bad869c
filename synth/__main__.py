"""synth: candidate thoughts from an expert LLM (``o1e synth prepare|run`` / ``python -m o1e.synth prepare|run``)."""
import sys

from o1e.cli import main

if __name__ == "__main__":
    sys.exit(main(["synth", *sys.argv[1:]]))
