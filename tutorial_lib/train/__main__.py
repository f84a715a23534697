"""`python -m tutorial_lib.train [NAME] [--steps N] [--out DIR | --install]`: rebuild an artifact.

Without `--out` or `--install` the artifact goes to `$JAXGENAI_ARTIFACTS`, else a per-user
folder; the shipped copy in the package is replaced only with `--install`, and only by a run
of the full recorded configuration (not a smoke run).
"""

import argparse
import sys

from tutorial_lib.train import (
    TrainerConfigError,
    UnknownTrainerError,
    available_trainers,
    run_trainer,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_lib.train",
        description="Train an artifact from scratch and write its weights and metadata.",
    )
    parser.add_argument("name", nargs="?", help="artifact to train; omit to list them")
    parser.add_argument("--list", action="store_true", help="list available trainers")
    parser.add_argument(
        "--steps",
        default=None,
        help="number of training steps, for a short smoke run (default: the recorded config's; "
        "or set JAXGENAI_TRAIN_STEPS)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--out",
        default=None,
        help="artifacts folder to write to (default: $JAXGENAI_ARTIFACTS, else a per-user folder)",
    )
    where.add_argument(
        "--install",
        action="store_true",
        help="replace the artifact shipped in the package (full recorded configuration only)",
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
        folder = run_trainer(args.name, root=args.out, install=args.install, steps=args.steps)
    except (UnknownTrainerError, TrainerConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {folder}")
    if not args.install:
        print(
            f"The book still loads the shipped artifact; to use this one instead, set "
            f"JAXGENAI_ARTIFACTS={folder.parent}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
