"""The ``jaxlstm`` command: a thin layer over library calls.

Parsing the command line imports neither JAX nor Flax (``jaxlstm --help`` answers at once);
each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from jaxlstm._src.errors import JaxLSTMError

DESCRIPTION = """\
Keras recurrent models in JAX, with Keras's numbers. "jaxlstm COMMAND --help" describes a command.

Compiled programs are kept in JAX's persistent compilation cache ($JAXLSTM_CACHE_DIR, else
~/.cache/jaxlstm/xla) so a second run starts faster; --no-cache turns that off.
"""

# Python module -> the package to install, where they differ.
_PACKAGES = {"yaml": "PyYAML", "orbax": "orbax-checkpoint", "sklearn": "scikit-learn"}


def missing_package(err: ImportError) -> str:
    """What to install for a failed import: ``'PyYAML'`` for ``import yaml``, and so on."""
    module = (err.name or str(err)).split(".")[0]
    return _PACKAGES.get(module, module)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("jaxlstm")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        import jaxlstm

        return jaxlstm.__version__


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxlstm`` argument parser (no JAX import)."""
    parser = argparse.ArgumentParser(
        prog="jaxlstm", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--version", action="version", version=f"jaxlstm {_version()}", help="print the version"
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="do not use JAX's persistent compilation cache for this run",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help="one of:")

    p = sub.add_parser(
        "demo",
        help="run the Keras files shipped with jaxlstm in JAX against Keras's recorded\n"
        "outputs, then fine-tune the shipped forecaster",
    )
    p.add_argument("--repeat", type=int, default=20, help="timed calls per file (default 20)")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="where the fine-tuned model, loss plot and metrics go (default ./jaxlstm-demo)",
    )

    p = sub.add_parser(
        "inspect",
        help="show a Keras file's layers (output shapes, parameters, masks) and its LSTMs'\n"
        "options and gate layout",
    )
    p.add_argument(
        "file",
        help="a Keras file (.keras, .h5, .weights.h5), a tf.keras SavedModel directory or TF\n"
        "checkpoint, PyTorch weights (.safetensors, .pt) or an ONNX model (.onnx)",
    )

    p = sub.add_parser(
        "convert",
        help="rewrite a Keras model file as Keras 3 .keras (or legacy .h5); or one recurrent\n"
        "layer between Keras, PyTorch (.safetensors, .pt) and ONNX (.onnx) files",
    )
    p.add_argument(
        "input",
        help="the file to read: a Keras model (any version) or tf.keras SavedModel directory,\n"
        ".safetensors/.pt or .onnx",
    )
    p.add_argument(
        "output",
        help="the file to write: .keras (Keras 3), .h5 (legacy), .safetensors or .onnx",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument(
        "--layer",
        metavar="NAME",
        help="to or from PyTorch/ONNX: the recurrent layer, module or node to convert",
    )
    p.add_argument(
        "--batch-first", action="store_true", help="a PyTorch input was built batch_first=True"
    )

    p = sub.add_parser("finetune", help="fine-tune a Keras model as a YAML config describes")
    p.add_argument(
        "--config",
        required=True,
        metavar="YAML",
        help="the run config: a YAML file, or a shipped config's name (e.g. airline_finetune)",
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default: the config's output.dir)")
    p.add_argument("--epochs", type=int, help="override the config's number of epochs")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in its checkpoint folder (without it, a non-empty one is an error)",
    )
    g = p.add_argument_group(
        "several processes (jax.distributed)",
        "Run the same command in every process. Under srun (SLURM) or mpirun (Open MPI) with "
        "several tasks, or with JAX_COORDINATOR_ADDRESS set, it joins the others by itself "
        "(jax.distributed.initialize() detects them); on a Cloud TPU slice pass --distributed; "
        "elsewhere give --coordinator, --num-processes and --process-id.",
    )
    g.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run that JAX detects (a TPU slice; srun/mpirun: implied)",
    )
    g.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address and a port")
    g.add_argument("--num-processes", type=int, metavar="N", help="how many processes run")
    g.add_argument("--process-id", type=int, metavar="K", help="this process's id, 0 to N-1")
    g.add_argument(
        "--init-timeout",
        type=int,
        default=300,
        metavar="S",
        help="seconds to wait for every process to arrive (default 300)",
    )
    g.add_argument(
        "--heartbeat-timeout",
        type=int,
        default=60,
        metavar="S",
        help="seconds without a peer's heartbeat before the run is ended (default 60)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``jaxlstm`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return _run(args)
    except JaxLSTMError as err:
        print(f"jaxlstm: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        package = missing_package(err)
        print(
            f"jaxlstm: error: jaxlstm {args.command} needs {package}, which is not installed "
            f'({err}). Install it with: pip install "jaxlstm[train]" (or pip install {package}).',
            file=sys.stderr,
        )
        return 2
    except BrokenPipeError:
        # The reader went away (``jaxlstm inspect f | head``): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(args) -> int:
    if args.command == "finetune":
        from jaxlstm._src.train.distributed import launcher

        args.distributed = args.distributed or launcher() is not None
    if args.command == "finetune" and (
        args.distributed or args.coordinator or args.num_processes is not None
    ):
        from jaxlstm._src.train.distributed import initialize

        initialize(  # first, before any other JAX work
            args.coordinator,
            args.num_processes,
            args.process_id,
            initialization_timeout=args.init_timeout,
            heartbeat_timeout=args.heartbeat_timeout,
        )
    if not args.no_cache and args.command in ("demo", "finetune", "convert"):
        from jaxlstm._src.cache import enable_compilation_cache

        try:
            enable_compilation_cache()
        except OSError as err:  # e.g. a read-only home: run without the cache
            print(f"jaxlstm: note: no compilation cache ({err}).", file=sys.stderr)
    if args.command == "demo":
        from jaxlstm._src.demo import demo

        return 0 if demo(repeat=args.repeat, out_dir=args.out) else 1
    if args.command == "finetune":
        from jaxlstm._src.train.run import run_finetune

        run_finetune(args.config, args.out, args.epochs, resume=args.resume)
        return 0
    if args.command == "convert":
        return _convert(
            args.input, args.output, args.overwrite, layer=args.layer, batch_first=args.batch_first
        )
    if args.file.lower().endswith((".safetensors", ".pt", ".pth")):  # PyTorch weights
        from jaxlstm._src.torch import describe_torch_file

        print(describe_torch_file(args.file), flush=True)
        return 0
    if args.file.lower().endswith(".onnx"):
        from jaxlstm._src.onnx import describe_onnx_file

        print(describe_onnx_file(args.file), flush=True)
        return 0
    from jaxlstm._src.inspect import describe_keras_file, describe_model
    from jaxlstm._src.readers import read_keras_file

    if read_keras_file(args.file).config is not None:
        print(describe_model(args.file), end="\n\n", flush=True)
    print(describe_keras_file(args.file), flush=True)
    return 0


def _convert(
    src: str, dst: str, overwrite: bool, *, layer: str | None = None, batch_first: bool = False
) -> int:
    from jaxlstm._src.convert import convert_layer, is_foreign
    from jaxlstm._src.models.graph import load_keras
    from jaxlstm._src.save import save_keras

    if os.path.exists(dst) and not overwrite:
        print(f"jaxlstm: error: {dst} exists; pass --overwrite to replace it.", file=sys.stderr)
        return 2
    if is_foreign(src) or is_foreign(dst):  # PyTorch / ONNX: one recurrent layer
        print(convert_layer(src, dst, layer, batch_first=batch_first))
        return 0
    save_keras(load_keras(src), dst)
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
