import sys

from openai_frontend.cli import main

if __name__ == "__main__":
    sys.exit(main())
