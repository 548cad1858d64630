"""The `govtrain` command line.

Every user-caused error (bad config, tampered file, missing path) becomes one line
on stderr and a non-zero exit code; heavy imports (torch) happen inside the
commands that need them so `govtrain audit ...` and `govtrain explore` stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from governance.errors import GovtrainError


class _Group(click.Group):
    """A click group that turns govtrain's own errors into one line on stderr."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GovtrainError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="govtrain")
def main() -> None:
    """govtrain: governed PyTorch training with TLA+-checked rules and a verifiable audit log."""


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--max-states", default=200_000, show_default=True, help="Stop exploring past this.")
def explore(config: Path, max_states: int) -> None:
    """Explore every reachable governance state of CONFIG and check all invariants."""
    from governance.explore import explore as run_exploration
    from pipeline.config import load_config

    run = load_config(config)
    result = run_exploration(run.governance, max_states=max_states)
    states, edges = result.graph.number_of_nodes(), result.graph.number_of_edges()
    shape = f"groups={len(run.governance.groups)}, levels={run.governance.hierarchy.levels}"
    if result.violation is None:
        click.echo(f"reachable states: {states}  transitions: {edges}  ({shape})")
        click.echo(f"all invariants hold ({', '.join(result.checked)})")
        return
    click.echo(f"explored {states} states, {edges} transitions before the violation", err=True)
    click.echo(result.violation.describe(), err=True)
    sys.exit(1)
