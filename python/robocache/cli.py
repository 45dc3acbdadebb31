"""The ``robocache`` command line: ``robocache info``, ``robocache demo``."""

from __future__ import annotations

import argparse
import sys
import time


def _cmd_info(args: argparse.Namespace) -> int:
    import robocache

    info = robocache.build_info()
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    return demo.run(device=args.device, episodes=args.episodes, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="robocache", description="RoboCache: the data engine for robot learning")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="how this copy was built: version, CUDA, architectures, GPUs")
    p_info.set_defaults(func=_cmd_info)
    p_demo = sub.add_parser("demo", help="align a built-in multi-rate robot recording and time it")
    p_demo.add_argument("--device", default=None, help="'cpu' or 'cuda' (default: cuda if a GPU is visible)")
    p_demo.add_argument("--episodes", type=int, default=256, help="episodes in the sample batch (default 256)")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.set_defaults(func=_cmd_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
