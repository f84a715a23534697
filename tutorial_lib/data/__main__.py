"""`python -m tutorial_lib.data [status | fetch [NAME ...]]`: stage the book's data sets.

`status` (the default) shows each staged data set in the data root; `fetch` downloads the named
data sets (all staged ones when none is named) into the data root, verifying every sha256. Run
it once on a machine with internet, then point `JAXGENAI_DATA` at the folder on machines
without.
"""

import argparse
import sys

from tutorial_lib.data import DATASETS, DataError, data_root, dataset_status, fetch_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tutorial_lib.data", description=__doc__)
    parser.add_argument("command", nargs="?", default="status", choices=["status", "fetch"])
    parser.add_argument("names", nargs="*", help="data sets to fetch (default: all staged ones)")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        names = args.names or [d.name for d in DATASETS.values() if d.staged]
        unknown = sorted(set(names) - set(DATASETS))
        if unknown:
            print(
                f"error: unknown data set(s) {unknown}; known: {sorted(DATASETS)}", file=sys.stderr
            )
            return 2
        try:
            for name in names:
                print(f"{name}: {len(fetch_dataset(name))} files verified in {data_root()}")
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    print(f"data root: {data_root()}")
    records = dataset_status()
    for record in records:
        print(f"  {record.name:<28} {'ok' if record.verified else record.detail}")
    return 0 if all(r.verified for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
