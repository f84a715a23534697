"""`python -m tutorial_lib.train [NAME] [--out DIR]`: rebuild a shipped artifact from scratch."""

import argparse
import sys

from tutorial_lib.train import UnknownTrainerError, available_trainers, run_trainer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_lib.train",
        description="Train an artifact from scratch and write its weights and metadata.",
    )
    parser.add_argument("name", nargs="?", help="artifact to train; omit to list them")
    parser.add_argument("--list", action="store_true", help="list available trainers")
    parser.add_argument(
        "--out", default=None, help="artifacts folder (default: $JAXGENAI_ARTIFACTS or the package)"
    )
    args = parser.parse_args(argv)

    if args.list or args.name is None:
        trainers = available_trainers()
        if not trainers:
            print("No trainers registered yet.")
        for trainer in trainers.values():
            print(f"{trainer.name:<24} {trainer.description}")
        return 0
    try:
        folder = run_trainer(args.name, root=args.out)
    except UnknownTrainerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
