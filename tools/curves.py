"""The benchmarks' one plot: a quality curve per arm against training wall-clock."""

from __future__ import annotations

from pathlib import Path


def plot_curves(
    curves: dict[str, list[tuple[float, float]]],
    target: float,
    target_label: str,
    ylabel: str,
    path: Path,
) -> None:
    """(seconds, value) points per arm, the target as a dashed line; a headless PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, points in curves.items():
        ax.plot([x for x, _ in points], [y for _, y in points], label=name, marker=".")
    ax.axhline(target, color="grey", linestyle="--", label=target_label)
    ax.set_xlabel("training wall-clock (s, evals excluded)")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
