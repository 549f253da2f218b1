"""The ``jaxlstm`` command: ``demo`` and ``inspect``. A thin layer over library calls."""

from __future__ import annotations

import argparse
import sys

from jaxlstm._src.errors import JaxLSTMError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jaxlstm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="run the shipped Keras files in JAX and show parity")
    p_demo.add_argument("--repeat", type=int, default=20, help="timed calls per file")
    p_inspect = sub.add_parser("inspect", help="show a Keras file's LSTM layers and gate layout")
    p_inspect.add_argument("file")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from jaxlstm._src.demo import demo

            return 0 if demo(repeat=args.repeat) else 1
        from jaxlstm._src.inspect import describe_keras_file

        print(describe_keras_file(args.file))
        return 0
    except JaxLSTMError as err:
        print(f"jaxlstm: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
