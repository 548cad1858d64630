"""The `govtrain` command line.

Every user-caused error (bad config, tampered file, missing path) becomes one line
on stderr and a non-zero exit code; heavy imports (torch) happen inside the
commands that need them so `govtrain audit ...` and `govtrain explore` stay fast.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from govtrain.audit.errors import AuditError
from govtrain.cli.audit import audit, keys
from govtrain.cli.params import CONFIG, CONFIG_OR_OVERRIDE
from govtrain.cli.specs import specs
from govtrain.governance.config import TIERS
from govtrain.governance.errors import GovtrainError
from govtrain.resources import config_path, config_summary, packaged_configs


class _Group(click.Group):
    """A click group that turns govtrain's own errors into one line on stderr."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GovtrainError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except AuditError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:  # disk full, read-only, a path through a file: name the path
            where = exc.filename if exc.filename is not None else "?"
            click.echo(f"error: {where}: {exc.strerror or exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="govtrain")
def main() -> None:
    """govtrain: governed PyTorch training with TLA+-checked rules and a verifiable audit log."""


main.add_command(audit)
main.add_command(keys)
main.add_command(specs)


OVERRIDES = click.argument("overrides", nargs=-1, metavar="[FIELD=VALUE]...")


@main.command()
@click.argument("config", type=CONFIG)
@OVERRIDES
@click.option("--max-states", default=200_000, show_default=True, help="Stop exploring past this.")
@click.option(
    "--concrete",
    is_flag=True,
    help="Visit every concrete state (exact, but grows with total_steps and patience) instead "
    "of the abstract model (sound: no violation there means none here).",
)
@click.option(
    "--groups",
    "show_groups",
    is_flag=True,
    help="First list the groups (level, patterns), e.g. what `groups: auto` built.",
)
def explore(
    config: Path, overrides: tuple[str, ...], max_states: int, concrete: bool, show_groups: bool
) -> None:
    """Check every invariant of CONFIG's governance over all its reachable states.

    By default through the abstract model of governance/abstraction.py (seconds for the
    shipped configs); --concrete visits every concrete state. FIELD=VALUE overrides a
    field of CONFIG first (e.g. governance.governor.patience=3). A config with
    `groups: auto` builds its model's structure first (needs torch).
    """
    from govtrain.governance.abstraction import AbstractExploration, explore_abstract
    from govtrain.governance.explore import explore as explore_concrete
    from govtrain.pipeline.config import load_config

    cfg = load_config(config, overrides).governance
    if show_groups:
        for group in cfg.groups:
            click.echo(f"group {group.name} (level {group.level}): {' '.join(group.patterns)}")
    run_exploration = explore_concrete if concrete else explore_abstract
    result = run_exploration(cfg, max_states=max_states, progress=_Progress())
    states, edges = result.graph.number_of_nodes(), result.graph.number_of_edges()
    shape = f"groups={len(cfg.groups)}, levels={cfg.hierarchy.levels}"
    if result.violation is None:
        if isinstance(result, AbstractExploration):
            clock = ", ".join(map(str, result.clock.points))
            click.echo(
                f"abstract states: {states}  transitions: {edges}  ({shape}; clock from "
                f"{clock}); one governor: {result.governor_states} states; decisions: "
                f"{result.decisions} phase/need vectors"
            )
        else:
            click.echo(f"reachable states: {states}  transitions: {edges}  ({shape})")
        click.echo(f"all invariants hold ({', '.join(result.checked)})")
        return
    click.echo(f"explored {states} states, {edges} transitions before the violation", err=True)
    click.echo(result.violation.describe(), err=True)
    sys.exit(1)


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where report.html and the PNGs go (default: RUN/report).",
)
def report(run: Path, output: Path | None) -> None:
    """Write RUN's report (HTML page and PNG figures) from its audit log alone.

    Exit 0 when the log verifies and every decision replays; 1 when it does not (the page
    is still written, and says so at the top in red).
    """
    try:
        from govtrain.report import write_report
    except ModuleNotFoundError as exc:
        if exc.name != "matplotlib":
            raise
        raise GovtrainError("the report needs matplotlib: pip install 'govtrain[report]'") from None
    target, status, figures = write_report(run, output)
    for line in (status.verified, status.replayed, *status.problems):
        if line:
            click.echo(line, err=not status.ok)
    click.echo(f"report: {target} ({len(figures)} figures beside it)")
    if not status.ok:
        sys.exit(1)


class _Progress:
    """A line on stderr every few seconds while a long exploration runs."""

    EVERY_S = 5.0

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()

    def __call__(self, found: int, waiting: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.EVERY_S:
            self.last = now
            click.echo(
                f"... {found} states found, {waiting} waiting ({now - self.start:.0f} s)",
                err=True,
            )


DEFAULT_CONFIG = config_path("quickstart.yaml")


@main.command()
def configs() -> None:
    """List the configs that ship with govtrain: any command taking CONFIG takes the name."""
    for name, path in packaged_configs().items():
        click.echo(f"{name:18s} {config_summary(path)}")
    click.echo(f"(in {DEFAULT_CONFIG.parent}; copy one to start your own)")


@main.command()
@click.argument("config", required=False, type=CONFIG_OR_OVERRIDE)
@OVERRIDES
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the run goes (default: runs/NAME-UTCTIME).",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Verify and continue the run in this directory.",
)
@click.option(
    "--stop-after",
    type=click.IntRange(min=1),
    help="Stop (checkpointed, log sealed) after this many steps in all.",
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Ed25519 private key to sign with (default: the run's own, in RUN_DIR/keys).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def run(
    config: Path | str | None,
    overrides: tuple[str, ...],
    run_dir: Path | None,
    resume_dir: Path | None,
    stop_after: int | None,
    key_path: Path | None,
    no_progress: bool,
) -> None:
    """Train under governance: CONFIG (a file, or a packaged config's name: `govtrain
    configs`), or the packaged quickstart when none is given.

    FIELD=VALUE overrides a field of the config (e.g. train.lr=1e-3
    governance.governor.patience=8); the run commits to the config with them.
    Under `torchrun --nproc_per_node=N -m govtrain run CONFIG` it trains on N processes.
    """
    from govtrain.pipeline.logs import configure_logging

    if isinstance(config, str):
        config, overrides = None, (config, *overrides)  # overrides of the default
    if any("=" not in o for o in overrides):
        raise click.UsageError("CONFIG comes first, then the FIELD=VALUE overrides")
    launch = _train_side("govtrain.pipeline.launch")
    configure_logging()
    if resume_dir is not None and (config is not None or run_dir is not None or overrides):
        raise click.UsageError("--resume takes the config and directory from the run itself")
    trainer = launch.open_run(config or DEFAULT_CONFIG, run_dir, resume_dir, key_path, overrides)
    try:
        summary = trainer.train(stop_after=stop_after, progress=not no_progress and trainer.leader)
    except BaseException:
        launch.distributed.leave()
        raise
    if trainer.leader:
        _print_summary(
            summary,
            stopped=summary.steps < trainer.cfg.governance.total_steps and not summary.finished,
        )
    if trainer.world is not None:
        launch.distributed.finish()


TRAIN_EXTRA = ("torch", "transformers", "tokenizers", "accelerate")


def _train_side(module: str):
    """A torch-side module, or one line naming the extra to install when torch is missing."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAIN_EXTRA:
            raise
        raise GovtrainError(
            f"training needs the train extra ({exc.name} is not installed): "
            "pip install 'govtrain[train]'"
        ) from None


def _print_summary(s, stopped: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    title = "stopped early: resume with --resume" if stopped else "run complete"
    if s.finished:
        title = "run finished early: nothing left to train"
    table = Table(title=title, show_header=False)
    steps = str(s.steps)
    if s.finished:
        steps += f" of {s.total_steps} ({s.total_steps - s.steps} saved: every group converged)"
    table.add_row("steps", steps)
    table.add_row("final train / eval loss", f"{s.train_loss:.4f} / {s.eval_loss:.4f}")
    if s.evals_skipped:
        table.add_row(
            "evaluations",
            f"{s.evals} run, {s.evals_skipped} skipped (weights unchanged): about "
            f"{s.evals_skipped * s.eval_seconds_each:.1f} s avoided at "
            f"{s.eval_seconds_each:.2f} s each",
        )
    if s.deduplicated is not None:
        table.add_row("near-duplicates removed", f"{s.deduplicated} (run_start: data_pipeline)")
    if s.tiers is not None:
        table.add_row(
            "data tiers",
            ", ".join(f"{t} {s.tiers.get(t, 0)}" for t in TIERS)
            + f" after {s.rescorings} re-scorings",
        )
    table.add_row(
        "backward FLOPs skipped",
        f"{s.skipped_share:.1%} of dense ({s.backward_flops / 1e12:.2f} of "
        f"{s.dense_backward_flops / 1e12:.2f} TFLOP, torch.utils.flop_counter)",
    )
    if s.world_size > 1:
        table.add_row(
            "processes", f"{s.world_size} (gradient bytes reduced: {s.grad_bytes / 2**20:.1f} MiB)"
        )
    table.add_row(
        "transitions", ", ".join(f"{a} {n}" for a, n in sorted(s.transitions.items())) or "none"
    )
    table.add_row("final states", ", ".join(f"{g} {p}" for g, p in s.final_state.items()))
    table.add_row("active level", str(s.active_level))
    Console().print(table)
    click.echo(f"run directory: {s.run_dir}")
    click.echo(f"verify it with: govtrain audit verify {s.run_dir}")
