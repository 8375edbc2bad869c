"""``python -m o1e.pipeline ...`` is ``o1e run ...`` (the entry point for ``ray job submit``)."""

import sys

from o1e.pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
