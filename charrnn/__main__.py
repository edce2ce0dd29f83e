"""`python -m charrnn` (and `torchrun -m charrnn`) run the command-line interface."""

from charrnn.cli import main

if __name__ == "__main__":
    main()
