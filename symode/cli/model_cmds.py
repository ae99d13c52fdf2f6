"""Commands on one model: validate, graph, template, simulate, gradcheck, codegen."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from symode.cli.common import (
    add_params_option,
    add_spec_argument,
    build,
    echo,
    load_spec_with_params,
    parse_names,
    read_data,
)
from symode.errors import SymodeError


def run_validate(args: argparse.Namespace) -> int:
    from symode.symbolic.rhs import build_symbolic

    spec = load_spec_with_params(args.spec, args.params)
    sym = build_symbolic(spec)
    n_est = len(spec.estimated_parameters)
    print(f"{args.spec}: OK — model '{spec.name}': {len(spec.states)} states, {len(spec.inputs)} inputs, "
          f"{len(spec.parameters)} parameters ({n_est} estimated), {len(spec.interactions)} interactions, "
          f"{len(spec.observables)} observables")
    if args.equations:
        for name, rhs in sym.equations().items():
            print(f"  d{name}/dt = {rhs}")
    return 0


def run_graph(args: argparse.Namespace) -> int:
    from symode.viz.graph import draw_graph

    spec = load_spec_with_params(args.spec, args.params)
    strengths = None
    if args.strengths:
        strengths = {e.id: float(spec.parameters[e.strength].value) if isinstance(e.strength, str)
                     else float(e.strength) for e in spec.interactions if e.strength is not None}
    draw_graph(spec, args.output, strengths=strengths, title=args.title or spec.name)
    print(f"wrote {args.output}")
    return 0


def run_template(args: argparse.Namespace) -> int:
    from symode.graph.template import template_spec, template_yaml
    from symode.io import atomic_write_text

    if args.glv:
        spec, text = _glv_template(args)
    else:
        if args.satellites is None or args.metabolites is None:
            raise SymodeError("give --satellites and --metabolites (or --glv --species ...)")
        if args.satellites < 0 or args.metabolites < 1:
            raise SymodeError("need --satellites >= 0 and --metabolites >= 1")
        spec = template_spec(args.satellites, args.metabolites)
        text = template_yaml(args.satellites, args.metabolites)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        atomic_write_text(args.output, text)
        echo(f"wrote {args.output}: {len(spec.states)} states, {len(spec.interactions)} interactions, "
             f"{len(spec.parameters)} parameters")
    return 0


def _glv_template(args: argparse.Namespace) -> tuple[object, str]:
    """(spec, YAML text) of ``template --glv``."""
    import shlex

    from symode.graph.glv import glv_template_dict, glv_template_header, typical_abundances
    from symode.spec import dump_yaml, read_csv, spec_from_dict

    if args.satellites is not None or args.metabolites is not None:
        raise SymodeError("--glv takes --species, not --satellites/--metabolites")
    species = parse_names(args.species)
    if not species:
        raise SymodeError("--glv needs --species A,B,...")
    scales = typical_abundances(species, [read_csv(p) for p in args.data or []]) if args.data else None
    try:
        data = glv_template_dict(species, parse_names(args.perturbations), scales=scales,
                                 self_limit=args.self_limit,
                                 interaction_sd=None if args.interaction_sd == 0 else args.interaction_sd,
                                 sigma=args.sigma, offset=args.offset, name=args.name,
                                 stability_margin=args.stability)
    except ValueError as exc:
        raise SymodeError(str(exc)) from None
    spec = spec_from_dict(data, file="<glv template>")
    command = f"symode template --glv --species {','.join(species)}"
    if args.perturbations:
        command += f" --perturbations {','.join(parse_names(args.perturbations))}"
    if args.data:
        command += " " + " ".join(f"--data {shlex.quote(d)}" for d in args.data)
    if args.stability is not None:
        command += f" --stability {args.stability:g}"
    return spec, glv_template_header(command) + dump_yaml(spec.to_dict())


def _time_grid(t_end: float | None, dt: float | None) -> np.ndarray:
    if t_end is None:
        raise SymodeError("give --data or --t-end")
    if t_end <= 0:
        raise SymodeError("--t-end must be positive")
    if dt is not None and dt <= 0:
        raise SymodeError("--dt must be positive")
    step = dt or t_end / 1000
    times = np.append(np.arange(0.0, t_end, step), t_end)
    return times[np.concatenate([np.diff(times) > 1e-12, [True]])]


def run_simulate(args: argparse.Namespace) -> int:
    from symode.solve.simulation import simulate

    spec = load_spec_with_params(args.spec, args.params)
    data = read_data(args.data, spec, need_observables=False)[0] if args.data else None
    times = None
    if data is None:
        times = _time_grid(args.t_end, args.dt)
    elif args.t_end is not None:
        data = data.until(args.t_end)
    t0 = time.perf_counter()
    model = build(spec)
    t1 = time.perf_counter()
    traj = simulate(model, times, data=data, method=args.method, rtol=args.rtol, atol=args.atol)
    t2 = time.perf_counter()
    traj.to_csv(args.output)
    echo(f"wrote {args.output}: {len(traj.times)} rows x {len(model.states)} states "
         f"(build {t1 - t0:.2f} s, simulate {t2 - t1:.3f} s, {traj.stats.get('n_accepted', '?')} steps, "
         f"method {traj.stats.get('method_used', '?')})")
    if args.plot:
        from symode.viz.plots import plot_trajectories

        unit = "h" if data is None or data.time_column == "time_h" else ""
        plot_trajectories(args.plot, [(spec.name, traj)], data=data, title=spec.name, time_unit=unit)
        echo(f"wrote {args.plot}")
    return 0


def run_gradcheck(args: argparse.Namespace) -> int:
    import json

    from symode.solve.gradcheck import gradcheck, parse_window, render_table

    spec = load_spec_with_params(args.spec, args.params)
    data = read_data(args.data, spec)[0]
    model = build(spec)
    report = gradcheck(model, data, window=parse_window(args.window), methods=args.methods, rtol=args.rtol,
                       progress=not args.json)
    print(json.dumps(report, indent=1, allow_nan=False) if args.json else render_table(report))
    return 0


def run_codegen(args: argparse.Namespace) -> int:
    from symode.codegen.standalone import generate_standalone

    spec = load_spec_with_params(args.spec, args.params)
    t0 = time.perf_counter()
    out = generate_standalone(spec, args.output, prefix=args.prefix, build=args.build)
    files = sorted(p.name for p in out.iterdir())
    echo(f"wrote {out}: {', '.join(files)} ({time.perf_counter() - t0:.1f} s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add validate, graph, template, simulate, gradcheck and codegen to the ``symode`` parser."""
    p = sub.add_parser("validate", help="check a spec file and print a summary",
                       description="Load and validate a spec (schema, names, kinetic laws, expressions) and "
                                   "derive its equations.")
    add_spec_argument(p)
    add_params_option(p)
    p.add_argument("--equations", action="store_true", help="print the right-hand side dx/dt")
    p.set_defaults(func=run_validate)

    p = sub.add_parser("graph", help="draw the community graph",
                       description="Draw the community graph: species and metabolites as nodes, interactions as "
                                   "edges (uptake solid, production dashed, inhibition -|).")
    add_spec_argument(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output image (.png or .svg)")
    add_params_option(p)
    p.add_argument("--strengths", action="store_true", help="scale edges by their strength parameter")
    p.add_argument("--title", help="figure title (default: the spec's name)")
    p.set_defaults(func=run_graph)

    p = sub.add_parser("template", help="write a template spec (n x m community, or gLV with --glv)",
                       description="Write a template spec. By default the generalized community template: main "
                                   "culture X on substrate S, N satellites Y1..YN and M metabolites M1..MM with "
                                   "every possible production, uptake and inhibition edge, each with one strength "
                                   "parameter (strength 0 removes the edge), ready for `symode discover`. With "
                                   "--glv: the generalized Lotka-Volterra model of the --species, growth r_i x_i, "
                                   "self-limitation a_ii < 0, prunable interactions a_ij x_i x_j and perturbation "
                                   "terms g_i_u u(t) x_i for every --perturbations input, abundances observed as "
                                   "log10(x + offset) (docs/communities.md).")
    p.add_argument("--satellites", "-n", type=int, metavar="N", help="number of satellites")
    p.add_argument("--metabolites", "-m", type=int, metavar="M", help="number of metabolites")
    p.add_argument("--glv", action="store_true", help="the generalized Lotka-Volterra template")
    p.add_argument("--species", metavar="A,B,...", help="--glv: species (state and data column names)")
    p.add_argument("--perturbations", metavar="U,...", help="--glv: inputs acting on every growth rate "
                                                            "(data columns, e.g. a diet switch 0/1)")
    p.add_argument("--data", action="append", metavar="CSV",
                   help="--glv: data files whose species columns set each species' typical abundance xbar "
                        "(geometric mean of positive values; default 1), which scales a_ii and the penalty")
    p.add_argument("--self-limit", type=float, default=1.0, metavar="RATE",
                   help="--glv: a_ii xbar_i <= -RATE (per time unit; default 1)")
    p.add_argument("--interaction-sd", type=float, default=0.1, metavar="S",
                   help="--glv: ridge penalty a_ij xbar_j ~ N(0, S^2) (per time unit; default 0.1; 0: none)")
    p.add_argument("--sigma", type=float, default=0.3, help="--glv: noise sd of log10 abundances (default 0.3)")
    p.add_argument("--offset", type=float, default=1e-5,
                   help="--glv: observables log10(x + OFFSET) (default 1e-5; zeros count as OFFSET)")
    p.add_argument("--stability", type=float, metavar="MARGIN",
                   help="--glv: add a stability penalty: lambda_max of the symmetric part of the xbar-scaled "
                        "interaction matrix <= -MARGIN (per time unit; weight 1e6; a sufficient condition for a "
                        "globally stable positive equilibrium; default: none)")
    p.add_argument("--name", help="--glv: the model's name")
    p.add_argument("-o", "--output", metavar="FILE", help="output spec (default: standard output)")
    p.set_defaults(func=run_template)

    p = sub.add_parser("simulate", help="simulate a model and write the trajectory as CSV",
                       description="Simulate a spec. With --data, the trajectory has one row per data time and "
                                   "the inputs (e.g. D) come from the data's columns, piecewise constant between "
                                   "samples. Without data, inputs take their defaults on a grid up to --t-end.")
    add_spec_argument(p)
    p.add_argument("--data", metavar="CSV", help="data file: time column (time, time_h or t) and input columns")
    add_params_option(p, "JSON/YAML params file ({parameters, constants, x0}; e.g. an example's truth.json)")
    p.add_argument("--t-end", type=float, metavar="T", help="end time (without --data: required)")
    p.add_argument("--dt", type=float, metavar="DT", help="output step without --data (default: T/1000)")
    p.add_argument("--method", choices=("auto", "explicit", "stiff"), default="auto",
                   help="integrator: auto (Dormand-Prince, switching to Rodas4 when stiff; default), "
                        "explicit or stiff")
    p.add_argument("--rtol", type=float, default=1e-8, help="relative tolerance (default 1e-8)")
    p.add_argument("--atol", type=float, default=1e-10, help="absolute tolerance (default 1e-10)")
    p.add_argument("--plot", metavar="PNG", help="also plot the trajectory (and the data) to this file")
    p.add_argument("-o", "--output", required=True, metavar="CSV", help="output trajectory (time + states)")
    p.set_defaults(func=run_simulate)

    p = sub.add_parser("gradcheck", help="compare every gradient method with finite differences",
                       description="Compute the loss gradient (Gaussian negative log-likelihood of the observables) "
                                   "with respect to the estimated parameters and initial states by every method, "
                                   "and report each one's relative error against central finite differences "
                                   "(1e-12 tolerance), against the other methods, and its time per call. "
                                   "Relative error = max |g - g_ref| / max |g_ref|.")
    add_spec_argument(p)
    p.add_argument("--data", required=True, metavar="CSV", help="data file with inputs and observables")
    add_params_option(p, "params file: the point at which to check")
    p.add_argument("--window", metavar="T0:T1", help="only use samples with T0 <= t <= T1 (default: all)")
    p.add_argument("--methods", nargs="+", metavar="NAME",
                   help="methods to check (default: all of forward, adjoint, backsolve, discrete)")
    p.add_argument("--rtol", type=float, default=1e-8, help="tolerance of the methods under test (default 1e-8)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run_gradcheck)

    p = sub.add_parser("codegen", help="write a standalone C solver (forward + adjoint) with a Python loader",
                       description="Write a self-contained directory: C sources with the API in model.h (right-hand "
                                   "side, Jacobians, symode's integrator, simulation over sample times, loss gradient "
                                   "by forward sensitivities and by the adjoint; no sympy/CasADi/symode needed), a "
                                   "Makefile "
                                   "and an example program, model.py (ctypes + numpy loader) and README.md. "
                                   "Parameter values and x0 from --params (else the spec) are baked in as "
                                   "defaults.")
    add_spec_argument(p)
    add_params_option(p, "params file whose values become the baked-in defaults")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output directory (created; a previous codegen output there is replaced)")
    p.add_argument("--prefix", default="model", metavar="NAME",
                   help="prefix of the C API names, a C identifier (default: model -> model_simulate, MODEL_NX)")
    p.add_argument("--build", action="store_true", help="also build the library and example program (make)")
    p.set_defaults(func=run_codegen)
