"""`liverfusion view`: a segment result in the browser."""

from __future__ import annotations


def add_view(sub) -> None:
    v = sub.add_parser("view", help="a segment result in the browser: linked views, opening on the largest lesion")
    v.add_argument("result", help="a `liverfusion segment` output folder")
    v.add_argument("--port", type=int, default=0, help="local port (default: any free one)")
    v.add_argument("--no-browser", action="store_true", help="print the address only (e.g. on a remote machine)")
    v.set_defaults(func=run_view)


def run_view(args) -> int:
    from ..reports.viewer import view

    view(args.result, args.port, not args.no_browser)
    return 0
