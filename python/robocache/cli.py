"""The ``robocache`` command line: ``robocache info``, ``convert``, ``inspect``, ``demo``."""

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

    return demo.run(device=args.device, episodes=args.episodes, seed=args.seed, steps=args.steps, data=args.data)


def _cmd_convert(args: argparse.Namespace) -> int:
    from . import store

    kwargs = {}
    if args.rate_hz is not None:
        kwargs["rate_hz"] = args.rate_hz
    if args.split is not None:
        kwargs["split"] = args.split
    st = store.convert(args.src, args.dst, num_threads=args.threads, progress=not args.quiet, images=args.images,
                       videos=args.videos, resume=not args.no_resume, overwrite=args.overwrite, **kwargs)
    print(f"wrote {st.path}: {st.num_episodes} episodes, {len(st.streams)} streams")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from . import store

    print(store.describe(store.open_store(args.store, verify=args.verify)))
    if args.verify:
        print("checksums  ok (SHA-256 of every file)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="robocache", description="RoboCache: the data engine for robot learning")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="how this copy was built: version, CUDA, architectures, GPUs")
    p_info.set_defaults(func=_cmd_info)
    p_conv = sub.add_parser("convert", help="convert a dataset (RLDS, LeRobot, RoboMimic/robosuite, CALVIN) into a store")
    p_conv.add_argument("src", help="dataset directory or file")
    p_conv.add_argument("dst", help="store directory to create (appears only when complete)")
    p_conv.add_argument("--rate-hz", type=float, default=None, help="rate for formats that record no timestamps")
    p_conv.add_argument("--split", default=None, help="RLDS split (default: all)")
    p_conv.add_argument("--threads", type=int, default=None, help="reader threads (default: all cores)")
    p_conv.add_argument("--images", choices=["encoded", "raw"], default="encoded",
                        help="keep JPEG/PNG images encoded (default) or store them decoded")
    p_conv.add_argument("--videos", choices=["skip", "raw"], default="skip",
                        help="cameras kept as video files: leave them out (default, with a warning) or store "
                             "every frame decoded (uint8, large)")
    p_conv.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    p_conv.add_argument("--no-resume", action="store_true", help="start over instead of resuming DST.partial")
    p_conv.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p_conv.set_defaults(func=_cmd_convert)
    p_insp = sub.add_parser("inspect", help="print what a store holds")
    p_insp.add_argument("store")
    p_insp.add_argument("--verify", action="store_true", help="also check every file's SHA-256")
    p_insp.set_defaults(func=_cmd_inspect)
    p_demo = sub.add_parser("demo", help="align a built-in multi-rate recording, then train a small policy with the loader")
    p_demo.add_argument("--device", default=None, help="'cpu' or 'cuda' (default: cuda if a GPU is visible)")
    p_demo.add_argument("--episodes", type=int, default=256, help="episodes in the sample batch (default 256)")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--steps", type=int, default=200, help="training steps with the loader (0: skip training)")
    p_demo.add_argument("--data", default=None,
                        help="train on this dataset (RLDS, LeRobot, RoboMimic/robosuite, CALVIN) instead of the sample")
    p_demo.set_defaults(func=_cmd_demo)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as e:  # bad input: one clear line, not a traceback
        print(f"robocache {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
