"""What every command shares: the load-spec / read-data / build-model preamble, common options,
messages on standard error, and user errors as one located line with exit status 2.

A command family is a module with ``register(subparsers)``; each command is a function
``run(args) -> int`` set with ``parser.set_defaults(func=run)``. A command with parallel loops adds
:func:`add_scheduler_option`; :func:`run_command` then runs it with that scheduler (or
``$SYMODE_SCHEDULER``) as the default of every loop inside (``symode.parallel.use_scheduler``).
Commands import the stages they use inside ``run`` so that ``symode --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from symode.errors import SymodeError

if TYPE_CHECKING:
    from symode.solve.model import Model
    from symode.spec import Spec
    from symode.spec.data import Dataset

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "add_params_option", "add_scheduler_option", "add_spec_argument",
           "build", "echo", "fmt_bound", "load_spec_with_params", "parse_names", "read_data", "run_command"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def echo(*parts: object) -> None:
    """A message for the user on standard error (standard output is kept for results)."""
    print(*parts, file=sys.stderr)


def add_spec_argument(p: argparse.ArgumentParser, text: str = "model spec (YAML)") -> None:
    p.add_argument("spec", help=text)


def add_params_option(p: argparse.ArgumentParser,
                      text: str = "params file (JSON/YAML: parameters, constants, x0) overriding the spec's "
                                  "values") -> None:
    p.add_argument("--params", metavar="FILE", help=text)


def _scheduler_address(text: str) -> str:
    from symode.parallel import parse_scheduler

    try:
        return parse_scheduler(text)
    except SymodeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_scheduler_option(p: argparse.ArgumentParser) -> None:
    """``--scheduler``: run the command's parallel loops on a Dask cluster."""
    p.add_argument("--scheduler", type=_scheduler_address, metavar="ADDRESS",
                   help="run the parallel work (starts, candidates) as tasks on a Dask cluster: tcp://HOST:PORT of "
                        "a running scheduler, or local:N to start N local workers (needs symode[dask]; default "
                        "$SYMODE_SCHEDULER, else local processes)")


def _command_scheduler(args: argparse.Namespace) -> str | None:
    """The scheduler of a command with ``--scheduler``: the option, else ``$SYMODE_SCHEDULER``."""
    from symode.parallel import SCHEDULER_ENV, parse_scheduler

    if args.scheduler is not None:
        return str(args.scheduler)
    env = os.environ.get(SCHEDULER_ENV, "").strip()
    if not env:
        return None
    try:
        return parse_scheduler(env)
    except SymodeError as exc:
        raise SymodeError(f"${SCHEDULER_ENV}: {exc}") from None


def load_spec_with_params(path: str, params: str | None = None) -> Spec:
    """The spec at ``path``, with the values of the params file ``params`` (if given) applied."""
    from symode.spec import load_spec
    from symode.spec.params import apply_params

    return apply_params(load_spec(path), params)


def read_data(paths: str | Sequence[str], spec: Spec, *, need_observables: bool = True,
              check: Callable[[Spec, Dataset], None] | None = None) -> list[Dataset]:
    """Read data files and check their columns against ``spec`` (unknown columns warned about; the
    observables required when ``need_observables``), or with ``check(spec, data)`` when given; a missing
    column or bad value is a located error."""
    from symode.spec.data import check_columns, read_csv

    datasets = []
    for path in [paths] if isinstance(paths, str) else paths:
        data = read_csv(path)
        if check is None:
            check_columns(spec, data, need_observables=need_observables)
        else:
            check(spec, data)
        datasets.append(data)
    return datasets


def build(spec: Spec) -> Model:
    """Compile (or load from the cache) the model of ``spec``."""
    from symode.solve.model import build_model

    return build_model(spec)


def parse_names(text: str | None) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; None or empty -> []."""
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def fmt_bound(v: float | None) -> str:
    """An interval bound for display: ``open`` when the interval is unbounded on that side."""
    return "open" if v is None else f"{v:.4g}"


def _warning_line(message: Any, category: Any, filename: Any, lineno: Any, file: Any = None,
                  line: Any = None) -> None:
    print(f"symode: warning: {message}", file=sys.stderr)


def run_command(args: argparse.Namespace) -> int:
    """Run the command chosen by ``args`` (on its scheduler, if it has the option): warnings as one line
    each, user errors as one line and exit status 2, Ctrl-C as exit status 130."""
    import warnings

    warnings.showwarning = _warning_line
    try:
        if not hasattr(args, "scheduler"):
            return int(args.func(args) or 0)
        from symode.parallel import use_scheduler

        with use_scheduler(_command_scheduler(args)):
            return int(args.func(args) or 0)
    except SymodeError as exc:
        echo(f"symode: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        echo("symode: interrupted")
        return EXIT_INTERRUPTED
