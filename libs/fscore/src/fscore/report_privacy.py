"""The privacy and attack figures of ``fscope report`` (paper Figure 12, §5.3.3), drawn from what the privacy and
attack plug-ins leave in ``summary.json``:

* accuracy against privacy: each run's final accuracy against the share of participants adding noise, each
  point labelled with the ε they spent (or, when every run noises the same participants, against ε itself);
* the attack success rate and clean accuracy over rounds, for runs with a backdoor;
* the reconstruction grid of a gradient-inversion attack: the real training examples above, what the
  coordinator recovered below, with each reconstruction's SSIM.
"""

from __future__ import annotations

import math
from typing import Any

#: the plug-in summary keys the figures read
BACKDOOR, INVERSION = "backdoor", "gradient_inversion"


def _final_accuracy(run: Any) -> float | None:
    metrics = run.summary.get("final_metrics", {})
    return metrics.get("heldout.accuracy", metrics.get("clients.accuracy"))


def _spent(run: Any) -> tuple[float, float | None]:
    """(share of participants protected, the ε they spent: the largest, client-side first, else central)."""
    privacy = run.summary.get("privacy")
    if not privacy:
        return 0.0, None
    for unit in ("participants", "examples"):
        if unit in privacy:
            p = privacy[unit]
            total = p["protected"] + p["unprotected"]
            return p["protected"] / max(total, 1), p.get("epsilon_max") or p.get("epsilon_mean")
    central = next(iter(privacy.get("central", {}).values()), {})
    return 1.0, central.get("epsilon")


def privacy_figures(runs: list[Any], labels: list[str], png: Any) -> dict[str, bytes]:
    """Those of the three figures the runs have data for, as PNG bytes by file name (``png(fig, plt)`` saves)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    if any(run.summary.get("privacy") for run in runs):
        out["accuracy_vs_privacy.png"] = _privacy_curve(plt, runs, labels, png)
    backdoored = [(run, label) for run, label in zip(runs, labels, strict=True)
                  if run.summary.get("plugins", {}).get(BACKDOOR, {}).get("rounds")]
    if backdoored:
        out["attack_success_rate.png"] = _attack_rounds(plt, backdoored, png)
    inverted = [(run, label) for run, label in zip(runs, labels, strict=True)
                if run.summary.get("plugins", {}).get(INVERSION, {}).get("reconstructions")]
    if inverted:
        out["inversion.png"] = inversion_grid([(label, run.summary["plugins"][INVERSION]) for run, label in inverted])
    return out


def _privacy_curve(plt: Any, runs: list[Any], labels: list[str], png: Any) -> bytes:
    points = [(*_spent(run), _final_accuracy(run), label) for run, label in zip(runs, labels, strict=True)]
    points = [p for p in points if p[2] is not None]
    by_share = len({p[0] for p in points}) > 1
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    if by_share:
        points.sort(key=lambda p: p[0])
        ax.plot([100 * p[0] for p in points], [p[2] for p in points], marker="o")
        for share, eps, accuracy, _ in points:
            ax.annotate("no noise" if eps is None and share == 0 else f"ε={_fmt(eps)}", (100 * share, accuracy),
                        textcoords="offset points", xytext=(4, 6), fontsize=7)
        ax.set(xlabel="participants adding noise (%)")
    else:
        finite = [p for p in points if p[1] is not None]
        finite.sort(key=lambda p: p[1])
        ax.plot([p[1] for p in finite], [p[2] for p in finite], marker="o")
        for _, eps, accuracy, label in finite:
            ax.annotate(label, (eps, accuracy), textcoords="offset points", xytext=(4, 6), fontsize=7)
        ax.set(xlabel="ε spent", xscale="log")
    ax.set(ylabel="final test accuracy", title="Accuracy against privacy")
    ax.grid(alpha=0.3)
    return png(fig, plt)


def _fmt(eps: float | None) -> str:
    if eps is None or not math.isfinite(eps):
        return "∞"
    return f"{eps:.3g}"


def _attack_rounds(plt: Any, runs: list[tuple[Any, str]], png: Any) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (run, label) in enumerate(runs):
        rows = run.summary["plugins"][BACKDOOR]["rounds"]
        color = f"C{i}"
        ax.plot([r["round"] for r in rows], [r["attack_success_rate"] for r in rows], color=color,
                label=f"{label}: attack success")
        ax.plot([r["round"] for r in rows], [r["clean_accuracy"] for r in rows], color=color, linestyle=":",
                label=f"{label}: clean accuracy")
    ax.set(xlabel="round", ylabel="rate", ylim=(0, 1.02), title="Backdoor: attack success rate and clean accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return png(fig, plt)


def inversion_grid(attacks: list[tuple[str, dict[str, Any]]], columns: int = 10) -> bytes:
    """Per attack two rows: the real examples, then their reconstructions with SSIM (Figure 12's left panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt
    import numpy as np

    rows = 2 * len(attacks)
    fig, axes = plt.subplots(rows, columns, figsize=(1.0 * columns, 1.15 * rows), squeeze=False)
    for a, (label, attack) in enumerate(attacks):
        shape = attack.get("image_shape") or [math.isqrt(len(attack["reconstructions"][0]["image"]))] * 2
        shown = attack["reconstructions"][:columns]
        for c in range(columns):
            for r, key in ((2 * a, "truth"), (2 * a + 1, "image")):
                ax = axes[r][c]
                ax.axis("off")
                if c < len(shown):
                    ax.imshow(np.asarray(shown[c][key]).reshape(shape), cmap="gray_r", vmin=0, vmax=1)
                    if key == "image" and shown[c].get("ssim") is not None:
                        ax.set_title(f"{shown[c]['ssim']:.2f}", fontsize=7)
        axes[2 * a][0].set_title(f"{label}: real", fontsize=7, loc="left")
        ssim = attack.get("mean_ssim")
        axes[2 * a + 1][0].text(0, -0.2, f"reconstructed (mean SSIM {ssim:.2f})" if ssim is not None else "",
                                transform=axes[2 * a + 1][0].transAxes, fontsize=7, va="top")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
