import sys

from o1e.cli import main

if __name__ == "__main__":
    sys.exit(main(["vote", *sys.argv[1:]]))
