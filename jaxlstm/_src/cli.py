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
    p_demo.add_argument("--out", help="where the fine-tuned model and plot go (./jaxlstm-demo)")
    p_inspect = sub.add_parser("inspect", help="show a Keras file's LSTM layers and gate layout")
    p_inspect.add_argument("file")
    p_convert = sub.add_parser(
        "convert", help="rewrite a Keras model file as Keras 3 .keras (or legacy .h5)"
    )
    p_convert.add_argument("input")
    p_convert.add_argument("output", help="ends in .keras (Keras 3 archive) or .h5 (legacy)")
    p_convert.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p_ft = sub.add_parser("finetune", help="fine-tune a Keras model as a YAML config describes")
    p_ft.add_argument("--config", required=True, help="a YAML file, or a shipped config's name")
    p_ft.add_argument("--out", help="output folder (default: the config's output.dir)")
    p_ft.add_argument("--epochs", type=int, help="override the config's epochs")
    p_ft.add_argument("--resume", action="store_true", help="continue the run in its checkpoints")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from jaxlstm._src.demo import demo

            return 0 if demo(repeat=args.repeat, out_dir=args.out) else 1
        if args.command == "finetune":
            from jaxlstm._src.train.run import run_finetune

            run_finetune(args.config, args.out, args.epochs, resume=args.resume)
            return 0
        if args.command == "convert":
            return _convert(args.input, args.output, args.overwrite)
        from jaxlstm._src.inspect import describe_keras_file, describe_model
        from jaxlstm._src.readers import read_keras_file

        if read_keras_file(args.file).config is not None:
            print(describe_model(args.file), end="\n\n")
        print(describe_keras_file(args.file))
        return 0
    except JaxLSTMError as err:
        print(f"jaxlstm: error: {err}", file=sys.stderr)
        return 2


def _convert(src: str, dst: str, overwrite: bool) -> int:
    import os

    from jaxlstm._src.models.graph import load_keras
    from jaxlstm._src.save import save_keras

    if os.path.exists(dst) and not overwrite:
        print(f"jaxlstm: error: {dst} exists; pass --overwrite to replace it.", file=sys.stderr)
        return 2
    save_keras(load_keras(src), dst)
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
