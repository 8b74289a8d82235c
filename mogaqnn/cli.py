"""Command line: ``mogaqnn search|resume|worker|export|report|dashboard|models|datasets``.

Usage errors and every MogaqnnError become one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields

from .config import FIELD_HELP, SearchConfig, load_toml
from .errors import MogaqnnError, RunDirError

__all__ = ["main"]

EXIT_USAGE = 2


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise MogaqnnError(f"{message} (see '{self.prog} --help')")


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file "
                   "(flags given here override it)")  # fmt: skip
    defaults = SearchConfig()
    for f in fields(SearchConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f"{FIELD_HELP.get(f.name, '')} (default: {shown})"
        if f.type == "bool" or isinstance(default, bool):
            p.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction,
                           help=help_text)  # fmt: skip
        else:
            p.add_argument(flag, dest=f.name, default=None, metavar="VALUE", help=help_text)


def _config_from_args(args: argparse.Namespace) -> SearchConfig:
    values: dict = {}
    if args.config:
        values.update(load_toml(args.config))
        source = f"config file {args.config}"
    flags = {f.name: getattr(args, f.name) for f in fields(SearchConfig)}
    given = {k: v for k, v in flags.items() if v is not None}
    if args.config:
        # Validate the file alone first so that its errors name the file.
        SearchConfig.from_mapping(values, source=source)
    values.update(given)
    return SearchConfig.from_mapping(values, source="the command line")


def _cmd_search(args: argparse.Namespace) -> int:
    from ._pipeline import run_and_report
    from .search import Search

    config = _config_from_args(args)
    result = run_and_report(Search(config))
    print(result.table())
    print(f"\nrun directory: {result.run_dir}")
    return 0


# Flags that say how to run, which resume and worker accept (see RUN_IDENTITY_EXCLUDED).
_RUN_FLAGS = ("workers", "devices", "device", "threads")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    for name in _RUN_FLAGS:
        p.add_argument("--" + name, dest=name, default=None, metavar="VALUE",
                       help=FIELD_HELP[name])  # fmt: skip


def _cmd_resume(args: argparse.Namespace) -> int:
    from ._pipeline import run_and_report
    from .run import RunDir
    from .search import Search

    stored = RunDir(args.dir).load()
    if stored.model.startswith("python:") or stored.dataset.startswith("python:"):
        raise RunDirError(
            f"{args.dir} is a run of a model or dataset given as a Python object; resume it "
            "from Python: Search(config, model=..., data=...).run()"
        )
    if args.truncate_journal:
        from .search import truncate_journal

        cut = truncate_journal(RunDir(args.dir).journal)
        print(
            "the study journal is intact; nothing was cut" if cut is None else
            f"cut the study journal at its damaged line {cut[0]}, keeping {cut[1]} records "
            f"(the whole file is kept as {RunDir(args.dir).journal}.damaged)",
            file=sys.stderr,
        )  # fmt: skip
    changes = {"out": args.dir}
    changes.update({k: getattr(args, k) for k in (*_RUN_FLAGS, "progress")
                    if getattr(args, k) is not None})  # fmt: skip
    config = SearchConfig.from_mapping({**stored.to_dict(), **changes}, "the command line")
    result = run_and_report(Search(config))
    print(result.table())
    print(f"\nrun directory: {result.run_dir}")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from .search import run_worker

    # Validated like the search flags, so that bad values give the same one-line errors.
    given = {k: getattr(args, k) for k in _RUN_FLAGS if getattr(args, k) is not None}
    checked = SearchConfig.from_mapping(given, "the command line")
    run_worker(
        args.storage, args.study, args.out, workers=checked.workers,
        device=checked.device if "device" in given else None, devices=checked.devices,
        threads=checked.threads,
    )  # fmt: skip
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import create_model, list_models, model_entrypoint

    print(f"{'model':<14}{'parameters (1x28x28, 10 classes)':>34}  description")
    for name in list_models():
        n = sum(p.numel() for p in create_model(name).parameters())
        print(f"{name:<14}{n:>34,}  {model_entrypoint(name).description}")
    print(
        "\nAlso: --model timm:NAME (pip install 'mogaqnn[timm]'), --model torchvision:NAME "
        "(pip install 'mogaqnn[torchvision]'; the first convolution is rebuilt for the "
        "dataset's channels), or --model package.module:factory for your own nn.Module."
    )
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from .data import describe_datasets

    for name, description, where in describe_datasets(args.data_dir):
        status = f"available: {where}" if where else "not available offline here"
        print(f"{name:<18}{description}\n{'':<18}{status}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx, export_packed, load_run_model

    run_model = load_run_model(args.run, args.individual)
    if run_model.val_accuracy is not None:
        print(f"trial {run_model.individual} fine-tuned again as the search evaluated it: "
              f"val accuracy {run_model.val_accuracy:.2%}")  # fmt: skip
    if args.format == "onnx":
        onnx = export_onnx(run_model, args.output)
        print(f"wrote {onnx.path}: {onnx.file_nbytes} bytes (ONNX, int8 QDQ weights; the "
              f"packed model size is {onnx.size_bits / 8:.0f} bytes)")  # fmt: skip
        return 0
    p = export_packed(run_model, args.output)
    print(f"wrote {p.path}: {p.file_nbytes} bytes = {p.payload_nbytes} bytes of tensors "
          f"({p.size_bits} bits, the model size, + {p.padding_bits} bits of byte padding) "
          f"+ {p.overhead_nbytes} bytes of header and CRC")  # fmt: skip
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    page = write_report(args.run)
    print(f"wrote {page} and pareto.png, hypervolume.png, policy.png in {page.parent}")
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import serve_dashboard

    serve_dashboard(args.run, host=args.host, port=args.port)
    return 0


COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "search": ("run a MOGAQNN search and train the chosen individual", _cmd_search),
    "resume": (
        "continue the run in a run directory (after a kill, or with more workers)",
        _cmd_resume,
    ),
    "worker": ("evaluate individuals for a search whose study is in a database", _cmd_worker),
    "export": ("export a run's trained individual: bit-packed file or ONNX", _cmd_export),
    "report": ("write a run's plots and HTML report into its directory", _cmd_report),
    "dashboard": (
        "open a run's study in optuna-dashboard (needs mogaqnn[dashboard])",
        _cmd_dashboard,
    ),
    "models": ("list the model zoo with parameter counts", _cmd_models),
    "datasets": ("list the datasets and where they are found", _cmd_datasets),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="mogaqnn",
        description="MOGAQNN: evolve per-layer bit widths and channel expansion of a CNN "
        "with NSGA-II on (error, model size).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    for name, (help_text, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == "search":
            _add_config_flags(p)
        if name == "resume":
            p.add_argument("dir", metavar="DIR", help="the run directory (its config.json)")
            _add_run_flags(p)
            p.add_argument(
                "--progress",
                dest="progress",
                default=None,
                action=argparse.BooleanOptionalAction,
                help=FIELD_HELP["progress"],
            )
            p.add_argument("--truncate-journal", action="store_true",
                           help="cut a damaged study journal before its first damaged line, "
                           "keeping the evaluations recorded before it")  # fmt: skip
        if name == "worker":
            p.add_argument(
                "--storage",
                required=True,
                metavar="URL",
                help="the coordinator's Optuna storage, e.g. postgresql://host/db",
            )
            p.add_argument(
                "--study",
                default=SearchConfig.study,
                metavar="NAME",
                help="the coordinator's study name (default: %(default)s)",
            )
            p.add_argument(
                "--out",
                required=True,
                metavar="DIR",
                help="a directory holding the coordinator's base.pt (shared or a "
                "copy); evaluations.log is written there",
            )
            _add_run_flags(p)
        if name in ("export", "report", "dashboard"):
            p.add_argument("run", metavar="RUN", help="run directory (a search's --out)")
        if name == "export":
            p.add_argument("--individual", default="chosen", metavar="ID|chosen",
                           help="'chosen' (default: the finally trained chosen individual, "
                           "final.pt) or a trial number of pareto.csv: a final-trained "
                           "candidate as trained (result.json's final_candidates), any other "
                           "rebuilt and fine-tuned as the search evaluated it")  # fmt: skip
            p.add_argument("--format", default="packed", choices=("packed", "onnx"),
                           help="packed: bit-packed weights at their own bit widths, the "
                           "model size on disk; onnx: QDQ graph for onnxruntime "
                           "(default: packed)")  # fmt: skip
            p.add_argument("--output", default=None, metavar="PATH",
                           help="file to write (default: RUN/model.mogaqnn or RUN/model.onnx)",
                           )  # fmt: skip
        if name == "dashboard":
            p.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
            p.add_argument(
                "--host",
                default="127.0.0.1",
                help="address to listen on (default: %(default)s, this machine only)",
            )
        if name == "datasets":
            p.add_argument("--data-dir", default=None, help="folder searched first")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return EXIT_USAGE
        return COMMANDS[args.command][1](args)
    except MogaqnnError as exc:
        print(f"mogaqnn: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mogaqnn: interrupted; 'mogaqnn resume DIR' continues the run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
