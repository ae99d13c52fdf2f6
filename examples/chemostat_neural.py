"""Example 1 of issue 8: model (1) with the satellite's growth law replaced by an MLP of A and B.

    python3 examples/chemostat_neural.py [--fitted out/fitted.yaml] [--data DIR] [-o docs/figures]

Trains specs/chemostat-neural.yaml on DIR/data.csv (default ../shared/data/chemostat-dev-hplc) unless
--fitted is given, simulates the trained model, compares the states with DIR/truth_states.csv and the
learned growth law muY = rA + rB (and rA, rB) with the true one of DIR/truth.json over the visited range
of A and B, plots it, and fits candidate kinetic laws to the learned map (symode.neural.propose_replacement).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from symode import build_model, load_spec, read_csv, simulate  # noqa: E402
from symode.neural import mlp_numpy, propose_replacement, train, write_training  # noqa: E402


def true_rates(truth: dict, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = truth["parameters"]
    den = 1 + A / p["KA"] + B / p["KB"]
    return p["muA"] * (A / p["KA"]) / den, p["muB"] * (B / p["KB"]) / den


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fitted", help="a trained fitted.yaml (default: train now into OUT/train)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chemostat-dev-hplc"))
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "figures"))
    args = ap.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(args.data)
    data = read_csv(data_dir / "data.csv")
    if args.fitted:
        spec = load_spec(args.fitted)
    else:
        result = train(load_spec(ROOT / "specs" / "chemostat-neural.yaml"), data)
        spec = load_spec(write_training(result, out / "train"))
    model = build_model(spec)
    traj = simulate(model, data=data)
    report: dict = {"states": {}}
    truth_states = data_dir / "truth_states.csv"
    if truth_states.exists():
        T = np.genfromtxt(truth_states, delimiter=",", names=True)
        for n in ("X", "S", "A", "B", "Y"):
            rel = (traj[n] - T[n]) / T[n]
            report["states"][n] = float(np.sqrt(np.mean(rel**2)))
    term = spec.neural_term("growthY")
    weights = {w: spec.parameters[w].value for w in term.weight_names()}
    A, B = traj["A"], traj["B"]
    learned = mlp_numpy(term, {"A": A, "B": B}, weights)
    rA, rB = learned[:, 0], learned[:, 1]
    truth = json.loads((data_dir / "truth.json").read_text()) if (data_dir / "truth.json").exists() else None
    if truth:
        tA, tB = true_rates(truth, A, B)
        mu_l, mu_t = rA + rB, tA + tB
        report["muY_rel_rms_along_trajectory"] = float(np.sqrt(np.mean(((mu_l - mu_t) / mu_t) ** 2)))
        report["rA_rel_rms"] = float(np.sqrt(np.mean(((rA - tA) / tA) ** 2)))
        report["rB_rel_rms"] = float(np.sqrt(np.mean(((rB - tB) / tB) ** 2)))
        report["consumption_qA_rel_rms"] = float(np.sqrt(np.mean(
            ((spec.parameters["gA"].value * rA * traj["Y"] - truth["parameters"]["gA"] * tA * T["Y"])
             / (truth["parameters"]["gA"] * tA * T["Y"])) ** 2)))
    # symbolic replacement over the visited range (after the initial transient: t > 100 h and all of it)
    proposals = propose_replacement(term, {"A": A, "B": B}, {"rA": rA, "rB": rB})
    report["proposals"] = {k: v[:3] for k, v in proposals.items()}
    (out / "chemostat_neural_report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "proposals"}, indent=1))
    for k, rows in proposals.items():
        print(k)
        for r in rows[:3]:
            print(f"  {r['law']:16s} rel_rms {r['rel_rms']:.4f}  {r['formula']}  "
                  + ", ".join(f"{n}={v:.4g}" for n, v in r["params"].items()))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    t = traj.times
    ax = axes[0]
    ax.plot(t, rA + rB, label="learned muY = rA + rB", lw=1)
    if truth:
        ax.plot(t, mu_t, "--", label="true muY", lw=1)
    ax.set_xlabel("time (h)")
    ax.set_ylabel("muY (1/h)")
    ax.legend()
    ax.set_title("satellite growth rate along the fitted trajectory")
    ga = np.linspace(A.min(), A.max(), 60)
    gb = np.linspace(B.min(), B.max(), 60)
    GA, GB = np.meshgrid(ga, gb)
    grid = mlp_numpy(term, {"A": GA.ravel(), "B": GB.ravel()}, weights)
    mu_grid = (grid[:, 0] + grid[:, 1]).reshape(GA.shape)
    ax = axes[1]
    cs = ax.contourf(GA, GB, mu_grid, 20)
    fig.colorbar(cs, ax=ax)
    ax.plot(A, B, "w.", ms=0.5, alpha=0.3)
    ax.set_xlabel("A (g/L)")
    ax.set_ylabel("B (g/L)")
    ax.set_title("learned muY(A, B) over the visited box (dots: trajectory)")
    ax = axes[2]
    if truth:
        tgA, tgB = true_rates(truth, GA.ravel(), GB.ravel())
        err = ((mu_grid.ravel() - (tgA + tgB)) / (tgA + tgB)).reshape(GA.shape)
        cs = ax.contourf(GA, GB, 100 * err, 20, cmap="RdBu_r")
        fig.colorbar(cs, ax=ax, label="%")
        ax.plot(A, B, "k.", ms=0.5, alpha=0.3)
        ax.set_title("learned vs true muY: relative error (%)")
        ax.set_xlabel("A (g/L)")
        ax.set_ylabel("B (g/L)")
    fig.tight_layout()
    fig.savefig(out / "chemostat_neural_muY.png", dpi=110)
    print(f"wrote {out / 'chemostat_neural_muY.png'}")


if __name__ == "__main__":
    main()
