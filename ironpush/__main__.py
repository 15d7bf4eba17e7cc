"""``python -m ironpush`` runs the CLI."""

from ironpush.cli import main

if __name__ == "__main__":
    main()
