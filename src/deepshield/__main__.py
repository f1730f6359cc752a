"""``python -m deepshield`` (and ``torchrun -m deepshield``) run the CLI."""

from deepshield.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
