"""`govtrain specs ...`: model-check the TLA+ specs with TLC and compare them with the Python core.

    govtrain specs check [NAME ...] [--set NAME | --all] [--json] [--no-conform]
    govtrain specs conform-graph [--config FILE] [--bug MODEL] [--json]
    govtrain specs gen-model CONFIG [--out FILE]
    govtrain specs conform RUN_DIR [--json]

`check` runs the models of specs/manifest.yaml (each must hold or fail exactly
as the manifest says, with its number of distinct states) and then the
spec-vs-code comparisons it declares (named `conform:<Name>`), and prints one
table; which models and comparisons exist, and in which set, is the
manifest's business (govtrain.formal.manifest), not this module's. Exit
status: 0 when everything matches, 1 when anything does not, 2 when there is
no Java or no tla2tools.jar ("TLC not found: SKIPPED"), so CI can tell "not
checked" from "broken".

`conform` validates one recorded run against the specs: the Python replay of
govtrain.formal.replay always, TLC trace validation (specs/TraceGovernedTraining.tla)
when TLC is found. Its exit status is 0 when every validator that ran accepts
the run and 1 otherwise; a missing TLC prints a loud SKIPPED line but is not
exit 2, because the replay (which checks everything TLC does on a trace,
against the Python core) still ran.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from govtrain.cli.params import CONFIG
from govtrain.governance.errors import GovtrainError
from govtrain.resources import config_path, manifest_path

if TYPE_CHECKING:
    from govtrain.formal.conform import ConformReport

MANIFEST = manifest_path()
SMALL = config_path("small.yaml")
EXIT_MISMATCH, EXIT_SKIPPED = 1, 2


@click.group()
def specs() -> None:
    """Model-check the TLA+ specs with TLC and compare them with the Python core."""


def _toolchain_or_skip(as_json: bool):
    from govtrain.formal.toolchain import TLCNotFound, find_toolchain

    try:
        return find_toolchain()
    except TLCNotFound as exc:
        if as_json:
            click.echo(json.dumps({"status": "skipped", "reason": str(exc)}))
        click.echo(f"TLC not found: SKIPPED ({exc})", err=as_json)
        sys.exit(EXIT_SKIPPED)


@dataclass
class _Row:
    name: str
    outcome: str
    expected: str
    states: str
    seconds: float
    ok: bool
    problems: list[str]
    data: dict[str, Any]


def _model_row(verdict) -> _Row:
    from govtrain.formal.output import describe_outcome

    r, e = verdict.result, verdict.entry
    outcome = describe_outcome(r.outcome, r.violated)
    found = "-" if r.distinct_states is None else f"{r.distinct_states:,}"
    states = (
        found if r.distinct_states == e.distinct_states else f"{found} (want {e.distinct_states:,})"
    )
    return _Row(
        e.name,
        outcome,
        e.expect.describe(),
        states,
        r.wall_s or 0.0,
        verdict.ok,
        list(verdict.problems),
        verdict.as_dict(),
    )


def _conform_row(name: str, run: Callable[[], Any]) -> _Row:
    from govtrain.formal.output import TLCOutputError

    start = time.monotonic()
    try:
        comparison = run()
    except (TLCOutputError, GovtrainError) as exc:
        return _Row(
            name,
            "error",
            "equal",
            "-",
            time.monotonic() - start,
            False,
            [str(exc)],
            {"name": name.removeprefix("conform:"), "ok": False, "error": str(exc)},
        )
    states = f"{comparison.left_states:,}"
    if comparison.right_states != comparison.left_states:
        states = f"{comparison.left_states:,} py / {comparison.right_states:,} tla"
    problems = [comparison.difference.describe()] if comparison.difference else []
    return _Row(
        name,
        "equal" if comparison.ok else "differs",
        "equal",
        states,
        comparison.seconds,
        comparison.ok,
        problems,
        comparison.as_dict(),
    )


def _comparison_jobs(pairs, toolchain, config: Path | None, timeout: float):
    """One job per (comparison, target): a row `conform:<name>` (with the variant, if any)."""
    from govtrain.formal.manifest import run_comparison

    source = None if config is None else _shown(config)
    jobs = []
    for entry, target in pairs:
        name = entry.row if target.variant is None else f"{entry.row} [{target.variant}]"

        def run(entry=entry, target=target):
            return run_comparison(
                entry, target, toolchain=toolchain, config=config, source=source, timeout=timeout
            )

        jobs.append((name, lambda name=name, run=run: _conform_row(name, run)))
    return jobs


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the package (`configs/small.yaml`)
    or to the working directory."""
    for root in (MANIFEST.parent.parent, Path.cwd()):
        if path.resolve().is_relative_to(root.resolve()):
            return str(path.resolve().relative_to(root.resolve()))
    return str(path)


def _table(rows: list[_Row], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("model", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("expected", no_wrap=True)
    table.add_column("states", justify="right", no_wrap=True)
    table.add_column("seconds", justify="right")
    table.add_column("")
    for row in rows:
        mark = "[green]ok[/]" if row.ok else "[bold red]MISMATCH[/]"
        table.add_row(row.name, row.outcome, row.expected, row.states, f"{row.seconds:.1f}", mark)
    # A log (CI) gets the whole table, not 80 columns of wrapped cells.
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    for row in rows:
        for problem in row.problems:
            console.print(f"[bold red]{row.name}[/]: {problem}", highlight=False)


def _run_all(
    jobs: list[tuple[str, Callable[[], _Row]]],
    quiet: bool,
    at_once: int = 1,
    first: Collection[str] = (),
) -> list[_Row]:
    """Run the jobs, `at_once` of them at a time (each a TLC process, or a comparison),
    those named in `first` (the long ones) started first; the rows come back in the
    jobs' order."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    order = sorted(range(len(jobs)), key=lambda i: jobs[i][0] not in first)
    with ThreadPoolExecutor(max_workers=max(1, at_once)) as pool:
        futures = {i: pool.submit(jobs[i][1]) for i in order}
        if not quiet:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            ) as progress:
                task = progress.add_task("TLC", total=len(jobs))
                names = {future: jobs[i][0] for i, future in futures.items()}
                for done in as_completed(names):
                    progress.update(task, description=f"TLC {names[done]} done")
                    progress.advance(task)
        return [futures[i].result() for i in range(len(jobs))]


@specs.command()
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME",
    help="Run the manifest's set NAME instead of `default` (e.g. `slow`); repeatable.",
)
@click.option("--all", "every_set", is_flag=True, help="Run every set of the manifest.")
@click.option("--slow", "every_set", is_flag=True, hidden=True)  # the former name of --all
@click.option("--no-conform", is_flag=True, help="Skip the spec-vs-code comparisons.")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Run config whose bounds the comparisons use [default: each comparison's, "
    "configs/small.yaml].",
)
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=MANIFEST,
    show_default=True,
)
@click.option("--timeout", default=600, show_default=True, help="Seconds per TLC run.")
@click.option(
    "--jobs", default=2, show_default=True, help="TLC runs (models, comparisons) at a time."
)
def check(
    names: tuple[str, ...],
    as_json: bool,
    sets: tuple[str, ...],
    every_set: bool,
    no_conform: bool,
    config: Path | None,
    manifest: Path,
    timeout: int,
    jobs: int,
) -> None:
    """Run the models and spec-vs-code comparisons (conform:NAME) of specs/manifest.yaml:
    its default set, or the NAMEs / fnmatch patterns given (an exact name runs whatever its
    set); exit 0 only if every result is as expected."""
    from govtrain.formal.manifest import check_model, load_manifest

    loaded = load_manifest(manifest)
    chosen = loaded.select(names, sets=None if every_set else (sets or ("default",)))
    comparisons = [] if no_conform else chosen.comparisons
    toolchain = _toolchain_or_skip(as_json)
    start = time.monotonic()
    runs: list[tuple[str, Callable[[], _Row]]] = [
        (
            m.name,
            (lambda m=m: _model_row(check_model(m, loaded, toolchain=toolchain, timeout=timeout))),
        )
        for m in chosen.models
    ]
    pairs = [(c, loaded.target(c)) for c in comparisons]
    runs += _comparison_jobs(pairs, toolchain, config, timeout)
    # models that hold explore their whole graph: with the comparisons, the long runs
    long = [m.name for m in chosen.models if m.workers > 1] + [c.row for c in comparisons]
    rows = _run_all(runs, quiet=as_json, at_once=jobs, first=long)
    elapsed = time.monotonic() - start
    bad = [r for r in rows if not r.ok]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "status": "ok" if not bad else "mismatch",
                    "seconds": round(elapsed, 1),
                    "results": [r.data for r in rows],
                },
                indent=2,
            )
        )
    else:
        _table(rows, f"TLC {toolchain.jar}")
        summary = f"{len(chosen.models)} models, {len(comparisons)} comparisons, {elapsed:.0f} s: "
        click.echo(summary + ("all as expected" if not bad else f"{len(bad)} MISMATCH"))
    if bad:
        sys.exit(EXIT_MISMATCH)


@specs.command("conform-graph")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Run config whose bounds both sides use [default: each comparison's, configs/small.yaml].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparisons as JSON.")
@click.option(
    "--bug",
    default=None,
    metavar="MODEL",
    help="Compare a broken spec variant instead, to see how a difference is reported: a "
    "manifest model with a variant (ConvergenceGovernor_NoColdGuard), or a variant "
    "(NoColdGuard: every comparison of a spec with a model of it).",
)
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=MANIFEST,
    show_default=True,
)
def conform_graph(config: Path | None, as_json: bool, bug: str | None, manifest: Path) -> None:
    """Run every spec-vs-code comparison of specs/manifest.yaml (TLC's state graphs and
    decisions against the Python core's at the same bounds); report the first difference
    of each, if any."""
    from govtrain.formal.manifest import load_manifest

    loaded = load_manifest(manifest)
    if bug is None:
        pairs = [(c, loaded.target(c)) for c in loaded.comparisons]
    else:
        pairs = loaded.variant_targets(bug)
    toolchain = _toolchain_or_skip(as_json)
    rows = _run_all(_comparison_jobs(pairs, toolchain, config, 600), quiet=as_json, at_once=2)
    title = "spec vs code at the bounds of " + (
        _shown(config) if config else "each comparison's config"
    )
    if as_json:
        click.echo(json.dumps([r.data for r in rows], indent=2))
    else:
        _table(rows, title)
    if not all(r.ok for r in rows):
        sys.exit(EXIT_MISMATCH)


@specs.command("check-config")
@click.argument("config", type=CONFIG)
@click.option(
    "--needs",
    default="1",
    show_default=True,
    help="The learning needs a group may report in the model, comma-separated naturals: "
    "every vector of them is decided in every abstract state (TLC's time grows as "
    "len(needs)**groups; `govtrain explore` decides 1 and 3 for every phase vector).",
)
@click.option("--timeout", default=600, show_default=True, help="Seconds per TLC run.")
def check_config_command(config: Path, needs: str, timeout: int) -> None:
    """Check CONFIG's governance with TLC: one governor at its patience and awakenings,
    and the abstract composition (specs/GovernedTrainingAbstract.tla) at all its
    constants; exit 0 only if every invariant holds."""
    from govtrain.formal.output import describe_outcome
    from govtrain.formal.userconfig import check_config
    from govtrain.pipeline.config import load_config

    try:
        vector = tuple(int(n) for n in needs.split(","))
    except ValueError:
        raise GovtrainError(f"--needs: {needs!r} is not comma-separated naturals") from None
    if any(n < 0 for n in vector):
        raise GovtrainError(f"--needs: {needs!r} is not comma-separated naturals")
    cfg = load_config(config).governance
    toolchain = _toolchain_or_skip(as_json=False)
    runs = check_config(cfg, toolchain, needs=vector, source=_shown(config), timeout=timeout)
    rows = [
        _Row(
            run.name,
            describe_outcome(run.result.outcome, run.result.violated),
            "holds",
            "-" if run.result.distinct_states is None else f"{run.result.distinct_states:,}",
            run.result.wall_s or 0.0,
            run.result.outcome.value == "holds",
            list(run.result.errors[:1]),
            {},
        )
        for run in runs
    ]
    _table(rows, f"TLC on {_shown(config)} (abstract model, needs {needs})")
    if not all(r.ok for r in rows):
        sys.exit(EXIT_MISMATCH)


@specs.command("gen-model")
@click.argument("config", type=CONFIG)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the module here (its name is the file's stem); print it when absent.",
)
@click.option(
    "--abstract",
    is_flag=True,
    help="Extend GovernedTrainingAbstract instead (specs/MCGovernedTrainingAbstract.tla).",
)
def gen_model(config: Path, out: Path | None, abstract: bool) -> None:
    """Render GovernedTraining's constants for CONFIG as an MC module
    (specs/MCGovernedTraining.tla is this for configs/small.yaml)."""
    from govtrain.formal.compare import render_training_module
    from govtrain.pipeline.config import load_config

    cfg = load_config(config).governance
    extends = "GovernedTrainingAbstract" if abstract else "GovernedTraining"
    module = out.stem if out is not None else f"MC{extends}"
    text = render_training_module(cfg, module, extends=extends, source=_shown(config))
    if out is None:
        click.echo(text, nl=False)
        return
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    click.echo(f"wrote {out}")


# --------------------------------------------------------------------------- conform


def _conform_table(report: ConformReport, title: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left")
    table.add_column("validator", no_wrap=True)
    table.add_column("checks")
    table.add_column("result", no_wrap=True)
    table.add_column("seconds", justify="right")
    shown = {
        "ok": "[green]ok[/]",
        "rejected": "[bold red]REJECTED[/]",
        "skipped": "[bold yellow]SKIPPED[/]",
        "error": "[bold red]ERROR[/]",
    }
    table.add_row(
        "Python replay",
        "observations -> transitions, states, decisions, routing quotas, invariants",
        shown["ok"] if report.replay_ok else "[bold red]DIVERGED[/]",
        f"{report.replay_seconds:.1f}",
    )
    table.add_row(
        "TLC trace validation",
        "recorded states, labels and decisions are a behaviour of GovernedTraining",
        shown[report.tlc_status],
        "-" if report.tlc is None else f"{report.tlc_seconds:.1f}",
    )
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    # Verdicts name groups as phase[embed]: print them as text, not as rich markup.
    console.print(f"Python replay: {escape(report.replay_summary())}", highlight=False)
    style = {"skipped": "bold yellow", "ok": "green"}.get(report.tlc_status, "bold red")
    tlc_line = escape(f"TLC trace validation: {report.tlc_summary()}")
    console.print(f"[{style}]{tlc_line}[/]", highlight=False)


@specs.command("conform")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print both verdicts as JSON.")
@click.option("--timeout", default=300, show_default=True, help="Seconds for the TLC run.")
@click.option(
    "--keep-model",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the trace and the TLC model here and keep them (to rerun TLC by hand).",
)
@click.option(
    "--require-tlc",
    is_flag=True,
    help="Exit 2 when TLC is not found, instead of 0 with the replay alone (for CI).",
)
def conform_command(
    run_dir: Path, as_json: bool, timeout: int, keep_model: Path | None, require_tlc: bool
) -> None:
    """Validate the decisions of the run in RUN_DIR against the specs: replay its audit
    log with the Python core (always) and check its trace with TLC (when TLC is found; a
    loud SKIPPED line otherwise). Exit 0 when every validator that ran accepts the run, 1
    otherwise; without TLC, exit 0 on the replay alone unless --require-tlc (then 2).

    This checks what the log says was decided, not that the log is authentic:
    `govtrain audit verify` checks its integrity (chain, signatures, anchors)."""
    from govtrain.audit.provenance import read_records
    from govtrain.formal.conform import conform_records
    from govtrain.formal.toolchain import TLCNotFound, find_toolchain

    records = read_records(run_dir / "audit.jsonl")
    try:
        toolchain, reason = find_toolchain(), ""
    except TLCNotFound as exc:
        toolchain, reason = None, f"TLC not found: {exc}"
    report = conform_records(
        records, toolchain=toolchain, skip_reason=reason, timeout=timeout, keep=keep_model
    )
    if as_json:
        click.echo(json.dumps({"run": str(run_dir), **report.as_dict()}, indent=2))
        if report.tlc_status == "skipped":
            click.echo(f"TLC trace validation: {report.tlc_summary()}", err=True)
    else:
        _conform_table(report, f"conform {run_dir} ({len(records)} audit records)")
        verdict = "every validator that ran accepts the run" if report.ok else "DIVERGED"
        click.echo(f"conform: {verdict}")
    if not report.ok:
        sys.exit(EXIT_MISMATCH)
    if require_tlc and report.tlc_status == "skipped":
        click.echo("conform: --require-tlc, and TLC did not run", err=True)
        sys.exit(EXIT_SKIPPED)
