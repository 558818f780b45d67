"""`liverfusion import-weights`: a third-party model's published weights converted into a bundle."""

from __future__ import annotations

from pathlib import Path


def add_import_weights(sub) -> None:
    iw = sub.add_parser("import-weights", help="convert a third-party model's published weights into a bundle")
    iw.add_argument("source", choices=["pyliverlesionseg"], help="KU Leuven liver and lesion U-Nets (PyPI, Apache-2.0)")
    iw.add_argument("--wheel", default=None, help="the package's wheel file, for a machine without pip access")
    iw.add_argument("--cache", default=None, help="where the downloaded wheel is kept (default ~/.cache/liverfusion)")
    iw.add_argument("--force", action="store_true", help="convert again even if the bundle's weights verify")
    iw.set_defaults(func=run_import_weights)


def run_import_weights(args) -> int:
    from ..apps.kuleuven.import_weights import CACHE, import_weights

    wheel = Path(args.wheel) if args.wheel else None
    weights = import_weights(args.source, wheel, Path(args.cache or CACHE), args.force)
    print(f"{args.source}: PyTorch weights ready at {weights} (use --model {args.source})")
    return 0
