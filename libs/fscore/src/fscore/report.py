"""``fscope report``: a course's figures, as PNG files and one self-contained HTML page.

It reads what every run leaves behind (``metrics.jsonl``, ``aggregations.jsonl``,
``summary.json``), whether the run was simulated, deployed, or rebuilt from a Kafka log by
``fscope replay --output``, and draws the paper's three figures for several runs at once:

* accuracy against virtual time, runs overlaid (Figure 8);
* how many effective aggregations each participant contributed to (Figure 9), zeros included;
* the staleness of every aggregated update (Figure 10);
* client-wise accuracy, one point per participant, with the mean and the 10th percentile marked, runs side by
  side (Figure 11: FedAvg against personalized algorithms), for runs whose participants evaluated;
* who holds what: each participant's examples stacked by label (from ``summary.json``'s ``data``, standalone);
* accuracy against privacy, a backdoor's success over rounds and a gradient inversion's reconstructions
  (Figure 12), for runs with those plug-ins (:mod:`fscore.report_privacy`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fscore.errors import FscoreError


@dataclass
class RunData:
    label: str
    directory: Path
    summary: dict[str, Any]
    evaluations: list[dict[str, Any]]
    aggregations: list[dict[str, Any]]

    @property
    def staleness(self) -> list[int]:
        return [s for a in self.aggregations for s in a["staleness"]]

    @property
    def aggregation_counts(self) -> list[int]:
        """Per participant, zeros included (the summary lists every participant)."""
        counts = self.summary.get("aggregation_counts")
        if counts is not None:
            return list(counts.values())
        seen = Counter(s for a in self.aggregations for s in a["senders"])
        return list(seen.values())


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise FscoreError(f"{path}, line {number}: not JSON ({exc.msg})") from None
    return rows


def load_run(directory: Path) -> RunData:
    summary_path = directory / "summary.json"
    if not summary_path.is_file():
        raise FscoreError(f"{directory} is not a run directory: it has no summary.json (fscope run --output, "
                          "fscope-coordinator serve --output and fscope replay --output write one)")
    try:
        summary = json.loads(summary_path.read_text())
    except json.JSONDecodeError as exc:
        raise FscoreError(f"{summary_path}: not JSON ({exc.msg})") from None
    label = str(summary.get("strategy") or directory.name)
    return RunData(label, directory, summary, _jsonl(directory / "metrics.jsonl"),
                   _jsonl(directory / "aggregations.jsonl"))


def _accuracy(row: dict[str, Any]) -> float | None:
    return row.get("heldout.accuracy", row.get("clients.accuracy"))


def _labels(runs: list[RunData]) -> list[str]:
    """Run labels, made unique by the directory name where two runs share a strategy."""
    counts = Counter(r.label for r in runs)
    return [r.label if counts[r.label] == 1 else f"{r.label} ({r.directory.name})" for r in runs]


def figures(runs: list[RunData]) -> dict[str, bytes]:
    """The three figures as PNG bytes, by file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = _labels(runs)
    out: dict[str, bytes] = {}

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for run, label in zip(runs, labels, strict=True):
        points = [(row["virtual_time"] / 3600.0, _accuracy(row)) for row in run.evaluations]
        points = [(t, a) for t, a in points if a is not None]
        if points:
            ax.plot(*zip(*points, strict=True), label=label, linewidth=1.4)
        target = run.summary.get("target")
        if target is not None:
            ax.axhline(target, color="grey", linestyle=":", linewidth=0.8)
    ax.set(xlabel="virtual time (hours)", ylabel="test accuracy", title="Accuracy against virtual time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out["accuracy_vs_time.png"] = _png(fig, plt)

    def zeros(run: RunData) -> str:
        counts = run.aggregation_counts
        return f"{sum(1 for c in counts if c == 0)} of {len(counts)} never aggregated"

    def dropped(run: RunData) -> str:
        n = run.summary.get("dropped_stale", sum(len(a.get("dropped", [])) for a in run.aggregations))
        return f"{len(run.staleness)} aggregated, {n} dropped"

    out["aggregation_counts.png"] = _histograms(
        plt, runs, labels, lambda r: r.aggregation_counts, zeros, "effective aggregations", "participants",
        "Aggregations per participant", "tab:blue")
    out["staleness.png"] = _histograms(
        plt, runs, labels, lambda r: r.staleness, dropped, "staleness (rounds)", "updates",
        "Staleness of aggregated updates", "tab:orange")
    series = {label: list(run.summary["clientwise"]["accuracy"]["by_participant"].values())
              for run, label in zip(runs, _algorithm_labels(runs), strict=True)
              if run.summary.get("clientwise", {}).get("accuracy")}
    if series:
        out["clientwise_accuracy.png"] = clientwise_figure(series, "Client-wise accuracy")
    partitioned = [(run, label) for run, label in zip(runs, labels, strict=True) if run.summary.get("data")]
    if partitioned:
        out["data_partition.png"] = partition_figure(plt, partitioned)
    from fscore.report_privacy import privacy_figures

    out.update(privacy_figures(runs, _run_names(runs), _png))
    return out


def _run_names(runs: list[RunData]) -> list[str]:
    """Runs by their directory names, which tell privacy settings apart (the strategy rarely does)."""
    return [r.directory.name for r in runs]


def _algorithm_labels(runs: list[RunData]) -> list[str]:
    """Figure 11 compares algorithms: a run is labelled by its personalization (FedAvg without one)."""
    names = [r.summary.get("personalization", "none") for r in runs]
    names = ["fedavg" if n == "none" else n for n in names]
    counts = Counter(names)
    return [n if counts[n] == 1 else f"{n} ({r.directory.name})" for n, r in zip(names, runs, strict=True)]


def clientwise_figure(series: dict[str, list[float]], title: str) -> bytes:
    """Figure 11: per label a column of points (one per participant), the mean as a solid bar and the 10th
    percentile as a dashed one; the points are spread sideways by a fixed seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(1.3 * len(series) + 2.5, 3.6))
    for i, values in enumerate(series.values()):
        jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(values))
        ax.scatter(np.full(len(values), i) + jitter, values, s=8, alpha=0.5)
        ax.hlines([np.mean(values)], i - 0.3, i + 0.3, colors="black", label="mean" if i == 0 else None)
        ax.hlines([np.percentile(values, 10)], i - 0.3, i + 0.3, colors="red", linestyles="dashed",
                  label="10th percentile" if i == 0 else None)
    ax.set_xticks(range(len(series)), list(series))
    ax.set(ylabel="client-wise accuracy", title=title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig, plt)


def partition_figure(plt: Any, runs: list[tuple[RunData, str]]) -> bytes:
    """Who holds what: per run, each participant's examples as one bar stacked by label, largest first."""
    import numpy as np

    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 2.6 * len(runs)), squeeze=False)
    for ax, (run, label) in zip(axes[:, 0], runs, strict=True):
        counts = np.array([p["labels"] for p in run.summary["data"]["participants"]])
        order = np.argsort(-counts.sum(axis=1), kind="stable")
        bottom = np.zeros(len(order))
        for c in range(counts.shape[1]):
            ax.bar(range(len(order)), counts[order, c], bottom=bottom, width=0.9, label=str(c))
            bottom += counts[order, c]
        ax.set(title=f"{label}: {len(order)} participants", xlabel="participant (largest first)",
               ylabel="examples")
        ax.title.set_fontsize(9)
    axes[0][0].legend(title="label", fontsize=6, ncol=2, loc="upper right")
    return _png(fig, plt)


def _histograms(plt: Any, runs: list[RunData], labels: list[str], values: Callable[[RunData], list[int]],
                subtitle: Callable[[RunData], str], xlabel: str, ylabel: str, title: str, color: str) -> bytes:
    """One integer histogram per run, side by side (bins of width 1 from 0, so zeros show)."""
    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.2), squeeze=False)
    for ax, run, label in zip(axes[0], runs, labels, strict=True):
        data = values(run)
        if data:
            ax.hist(data, bins=range(0, max(data) + 2), color=color, align="left", rwidth=0.85)
        ax.set(title=f"{label}\n{subtitle(run)}", xlabel=xlabel)
        ax.title.set_fontsize(8)
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title, fontsize=10)
    return _png(fig, plt)


def _png(fig: Any, plt: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _table(runs: list[RunData]) -> str:
    head = ("run", "rounds", "virtual time (h)", "time to target (h)", "final accuracy", "never aggregated",
            "dropped stale")
    rows = []
    for run, label in zip(runs, _labels(runs), strict=True):
        s = run.summary
        final = _accuracy(run.evaluations[-1]) if run.evaluations else None
        tt = s.get("time_to_target_h")
        cells = (label, s.get("rounds", ""), f"{s.get('virtual_time_s', 0) / 3600:.3f}",
                 "not reached" if tt is None else f"{tt:.3f}", "" if final is None else f"{final:.3f}",
                 s.get("participants_never_aggregated", ""), s.get("dropped_stale", ""))
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>")


def write_report(run_dirs: list[Path], output: Path) -> Path:
    """Write the PNGs and ``report.html`` (images embedded) to ``output``; returns the HTML's path."""
    if not run_dirs:
        raise FscoreError("fscope report needs at least one run directory")
    runs = [load_run(d) for d in run_dirs]
    output.mkdir(parents=True, exist_ok=True)
    images = figures(runs)
    for name, data in images.items():
        (output / name).write_bytes(data)
    body = "".join(f'<h2>{html.escape(name.removesuffix(".png").replace("_", " "))}</h2>'
                   f'<img alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
                   for name, data in images.items())
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>fscope course report</title>"
            f"<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}"
            f"td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:100%}}</style>"
            f"</head><body><h1>fscope course report</h1><p>{len(runs)} run(s): "
            f"{html.escape(', '.join(str(d) for d in run_dirs))}</p>{_table(runs)}{body}</body></html>")
    path = output / "report.html"
    path.write_text(page)
    return path
