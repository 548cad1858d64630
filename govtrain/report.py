"""`govtrain report RUN`: one self-contained HTML page and its figures as PNGs, drawn
from the audit log alone (no torch, no checkpoint read).

The page opens with the log's verification (hash chain, Merkle root, signatures, as
`govtrain audit verify` checks them, trust anchors included) and the replay of every
governance decision (`govtrain specs conform`'s Python half). A log that fails either
is reported in red at the top and every figure is titled as drawn from an unverified
log: the page never looks like a valid run's. Everything the log says is escaped
before it reaches the HTML, and the page loads nothing: the figures are inline PNGs.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib  # the report extra: a missing one fails the import, named by the CLI

from govtrain.audit.anchors import AnchorStore
from govtrain.audit.errors import AuditError
from govtrain.audit.files import replace_synced, run_subdir
from govtrain.audit.provenance import read_records
from govtrain.audit.records import Record
from govtrain.audit.verify import run_files, verify_run
from govtrain.formal.replay import replay
from govtrain.governance.config import TIERS
from govtrain.governance.errors import GovtrainError
from govtrain.governance.record import StepRecord
from govtrain.governance.state import Phase

PHASE_COLOURS = {
    Phase.DORMANT: "#b0b0b0",
    Phase.ACTIVE: "#1f77b4",
    Phase.COOLING: "#ff7f0e",
    Phase.CONVERGED: "#2ca02c",
    Phase.AWAKENED: "#d62728",
}
REPORT_DIR = "report"  # the default output, inside the run
FIGURES = ("timeline", "loss", "budget", "quotas", "flops", "signals", "measurements", "tiers")
# transitions named on the timeline (the others, e.g. BeginCooling and Reheat, are ticks)
NAMED = ("Activate", "Converge", "Awaken")


@dataclass
class Status:
    """What the page says first: the verification and the replay, each one line."""

    verified: str | None = None  # the summary when the log verifies
    problems: list[str] = field(default_factory=list)
    replayed: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Series:
    """Per-step series of a run, read through the step record schema."""

    name: str
    groups: list[str]
    levels: dict[str, int]
    signal_threshold: float
    signal: str = "grad_norm"
    steps: list[int] = field(default_factory=list)
    phases: dict[str, list[Phase]] = field(default_factory=dict)
    transitions: list[tuple[int, str, str]] = field(default_factory=list)  # step, group, action
    loss: list[float] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)
    units: dict[str, list[int]] = field(default_factory=dict)
    quotas: dict[str, list[int]] = field(default_factory=dict)
    signals: dict[str, list[float]] = field(default_factory=dict)
    flops: list[tuple[int, int]] = field(default_factory=list)  # (backward, dense) per step
    # per measure, per group: (step, value) on the probe steps that measured
    measurements: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)
    tiers: list[tuple[int, dict[str, int]]] = field(default_factory=list)  # each re-scoring


def check(run: Path, records: list[Record]) -> Status:
    status = Status()
    store = AnchorStore.default()
    anchors = store.notes(run_files(run)[0].parent) if store is not None else []
    try:
        status.verified = verify_run(run, anchors=anchors).summary()
    except AuditError as exc:
        status.problems.append(f"the audit log does not verify: {exc}")
    try:
        report = replay(records)
    except (GovtrainError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        status.problems.append(f"replay cannot read the log: {type(exc).__name__}: {exc}")
        return status
    if report.ok:
        status.replayed = (
            f"replay: {report.steps} steps and {report.transitions} transitions decided "
            "exactly as recorded"
        )
    else:
        status.problems.append(f"replay diverges at {report.divergence}")
    return status


def read_series(records: list[Record]) -> Series:
    config = records[0].body["config"]
    gov = config["governance"]
    names = [g["name"] for g in gov["groups"]]
    series = Series(
        name=str(config.get("name", "")),
        groups=names,
        levels={g["name"]: g["level"] for g in gov["groups"]},
        signal_threshold=gov["governor"]["signal_threshold"],
        signal=str(config.get("train", {}).get("signal", "grad_norm")),
        phases={n: [] for n in names},
        units={n: [] for n in names},
        quotas={n: [] for n in names},
        signals={n: [] for n in names},
    )
    for record in records:
        if record.kind == "eval":
            series.evals.append((record.body["step"], record.body["loss"]))
        if record.kind == "rescore":
            series.tiers.append((record.body["step"], record.body["counts"]))
        if record.kind != "step":
            continue
        step = StepRecord.from_dict(record.body, names)
        series.steps.append(step.step)
        series.loss.append(step.loss)
        for name, group, obs, units, quota in step.per_group(names):
            series.phases[name].append(group.phase)
            series.units[name].append(units)
            series.quotas[name].append(quota)
            series.signals[name].append(obs.signal)
        series.transitions += [
            (step.step, t.group or "", t.action if t.group else t.label) for t in step.transitions
        ]
        if step.backward_flops is not None and step.dense_backward_flops is not None:
            series.flops.append((step.backward_flops, step.dense_backward_flops))
        for group, values in (step.measurements or {}).items():
            for measure, value in values.items():
                series.measurements.setdefault(measure, {}).setdefault(group, []).append(
                    (step.step, value)
                )
    return series


def draw(series: Series, status: Status) -> dict[str, bytes]:
    """Each figure as PNG bytes; figures a log cannot fill (no FLOPs) are left out."""
    matplotlib.use("Agg")  # files only, whatever display there is
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    mark = "" if status.ok else "UNVERIFIED LOG: "
    steps = series.steps
    paths: dict[str, bytes] = {}

    def save(name: str, fig) -> None:
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=110)
        paths[name] = png.getvalue()
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(11, 0.6 * len(series.groups) + 1.6))
    for row, name in enumerate(reversed(series.groups)):
        phases = series.phases[name]
        start = 0
        for i in range(1, len(phases) + 1):
            if i == len(phases) or phases[i] != phases[start]:
                ax.broken_barh(
                    [(steps[start], steps[i - 1] - steps[start] + 1)],
                    (row - 0.4, 0.8),
                    color=PHASE_COLOURS[phases[start]],
                )
                start = i
    rows = {name: row for row, name in enumerate(reversed(series.groups))}
    for step, group, action in series.transitions:
        if group in rows:  # every group transition is a tick; the rarer ones also a name
            ax.plot([step, step], [rows[group] - 0.4, rows[group] + 0.4], "k-", lw=0.4)
            if action in NAMED:
                ax.annotate(action, (step, rows[group] + 0.42), fontsize=7, rotation=20)
        else:  # ActivateLevel(k), Finish: the whole run's
            ax.axvline(step, color="k", ls=":", lw=0.8)
            ax.annotate(
                action, (step, 1.0), xycoords=("data", "axes fraction"), fontsize=7, rotation=20
            )
    ax.set_yticks(range(len(series.groups)))
    ax.set_yticklabels([f"{n} (L{series.levels[n]})" for n in reversed(series.groups)])
    ax.set_xlabel("step")
    ax.set_title(f"{mark}governor phase per group")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in PHASE_COLOURS.values()]
    ax.legend(handles, [p.value for p in PHASE_COLOURS], ncol=5, fontsize=8, loc="lower right")
    save("timeline", fig)

    fig, ax = plt.subplots(figsize=(11, 3.4))
    ax.plot(steps, series.loss, lw=0.8, label="train loss")
    if series.evals:
        ax.plot(*zip(*series.evals, strict=True), "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_title(f"{mark}loss")
    ax.legend()
    save("loss", fig)

    fig, ax = plt.subplots(figsize=(11, 3.4))
    below = [0] * len(steps)
    for n in series.groups:
        top = [b + u for b, u in zip(below, series.units[n], strict=True)]
        ax.fill_between(steps, below, top, step="post", label=n)
        below = top
    ax.set_xlabel("step")
    ax.set_title(f"{mark}budget units per group (stacked)")
    ax.legend(fontsize=8, loc="upper right")
    save("budget", fig)

    fig, ax = plt.subplots(figsize=(11, 3.4))
    for n in series.groups:
        ax.step(steps, series.quotas[n], where="post", label=n)
    ax.set_xlabel("step")
    ax.set_title(f"{mark}routed samples per group (quota of the next step)")
    ax.legend(fontsize=8, loc="upper right")
    save("quotas", fig)

    if series.flops and len(series.flops) == len(steps):
        done = dense = 0
        saved = []
        for backward, full in series.flops:
            done, dense = done + backward, dense + full
            saved.append((dense - done) / 1e12)
        fig, ax = plt.subplots(figsize=(11, 3.4))
        ax.plot(steps, saved)
        ax.set_xlabel("step")
        ax.set_ylabel("TFLOP")
        share = (dense - done) / dense if dense else 0.0
        ax.set_title(f"{mark}backward FLOPs saved against dense, cumulative ({share:.1%})")
        save("flops", fig)

    fig, ax = plt.subplots(figsize=(11, 3.4))
    for n in series.groups:
        ax.plot(steps, series.signals[n], lw=0.8, label=n)
    ax.axhline(series.signal_threshold, color="k", ls="--", lw=0.8, label="threshold")
    ax.set_yscale("symlog", linthresh=series.signal_threshold / 10)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("step")
    ax.set_title(f"{mark}convergence signal per group ({series.signal})")
    ax.legend(fontsize=8, loc="upper right")
    save("signals", fig)

    if series.measurements:
        measures = sorted(series.measurements)
        fig, axes = plt.subplots(len(measures), 1, figsize=(11, 2.6 * len(measures) + 0.6))
        for ax, measure in zip([axes] if len(measures) == 1 else axes, measures, strict=True):
            for n in series.groups:
                points = series.measurements[measure].get(n, [])
                if points:
                    ax.plot(*zip(*points, strict=True), ".-", lw=0.8, ms=3, label=n)
            ax.set_ylabel(measure.replace("_", " "))
            ax.legend(fontsize=7, loc="upper right", ncol=3)
        ax.set_xlabel("step")
        fig.suptitle(f"{mark}probe measurements per group (hidden states on the probe batch)")
        save("measurements", fig)

    if series.tiers:
        fig, ax = plt.subplots(figsize=(11, 3.4))
        at = [step for step, _ in series.tiers]
        below = [0] * len(at)
        for tier in TIERS:
            counts = [c.get(tier, 0) for _, c in series.tiers]
            top = [b + n for b, n in zip(below, counts, strict=True)]
            ax.fill_between(at, below, top, step="post", label=tier)
            below = top
        ax.set_xlabel("step")
        ax.set_ylabel("samples")
        ax.set_title(f"{mark}data tiers at each re-scoring (stacked)")
        ax.legend(fontsize=8, loc="lower right", ncol=4)
        save("tiers", fig)
    return paths


def page(series: Series | None, status: Status, figures: dict[str, bytes], run: Path) -> str:
    esc = html.escape
    colour = "#1a7f37" if status.ok else "#c62828"
    lines = [status.verified, status.replayed, *status.problems]
    banner = "".join(f"<div>{esc(line)}</div>" for line in lines if line)
    title = "verified" if status.ok else "NOT VERIFIED: do not trust what follows"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>govtrain report: {esc(series.name if series else run.name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1250px}"
        f"#status{{border:3px solid {colour};color:{colour};padding:.8em;margin-bottom:1em}}"
        "img{max-width:100%;display:block;margin:1em 0}</style></head><body>",
        f'<div id="status"><strong>{esc(title)}</strong>{banner}</div>',
        f"<h1>{esc(series.name if series else run.name)}</h1>",
        f"<p>run directory: <code>{esc(str(run))}</code></p>",
    ]
    if series is not None and series.steps:
        final = ", ".join(f"{esc(n)} {esc(series.phases[n][-1].value)}" for n in series.groups)
        parts.append(f"<p>{len(series.steps)} steps; final phases: {final}</p>")
    for name in FIGURES:
        if name in figures:
            data = base64.b64encode(figures[name]).decode()
            parts.append(f'<img id="{name}" alt="{name}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(run: Path, out: Path | None = None) -> tuple[Path, Status, dict[str, Path]]:
    """report.html and the figures' PNGs in `out` (default: RUN/report, never reached
    through a link planted in the run); what the page says of the log. Each file is
    replaced atomically, so a link planted at its name is replaced, not written through."""
    try:
        records = read_records(run)
    except (AuditError, OSError) as exc:
        raise GovtrainError(f"{run}: no audit log to report on: {exc}") from exc
    if not records:
        raise GovtrainError(f"{run}: the audit log holds no records")
    status = check(run, records)
    series = None
    figures: dict[str, bytes] = {}
    try:  # a log that fails verification may hold anything: draw what can be drawn
        series = read_series(records)
        if series.steps:
            figures = draw(series, status)
    except Exception as exc:
        status.problems.append(f"the records cannot be drawn: {type(exc).__name__}: {exc}")
        figures = {}
    html = page(series, status, figures, run).encode()
    if out is None:
        where, folder = run / REPORT_DIR, run_subdir(run, REPORT_DIR, create=True)
    else:
        out.mkdir(parents=True, exist_ok=True)
        where, folder = out, run_subdir(out)
    with folder as fd:
        for name, png in figures.items():
            replace_synced(Path(f"{name}.png"), png, dir_fd=fd)
        replace_synced(Path("report.html"), html, dir_fd=fd)
    return where / "report.html", status, {name: where / f"{name}.png" for name in figures}
