import sys

from o1e.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
