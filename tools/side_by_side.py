"""The concrete and the abstract explorer side by side, on random small configs.

`govtrain explore` checks a shipped config with the abstract explorer
(governance/abstraction.py), which is sound only while the rules read what it assumes
they read. That assumption is checked here, not asserted: both explorers run on the
same configs (small enough for the concrete one to visit every state), and a config
on which only the concrete explorer finds a violation is a rule the abstraction cannot
see. tests/integration/test_abstraction_soundness.py runs it on a copy of the code
under each core bug of the seeded-bugs catalogue (tools/seeded_bugs.py), where the
copy's own explorers must agree.

    python -m tools.side_by_side --seed 0 --count 12      # a JSON line per config, then a summary
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence

from govtrain.governance.abstraction import explore_abstract
from govtrain.governance.config import GovernanceConfig, parse_governance
from govtrain.governance.explore import explore

MAX_STATES = 60_000


def random_config(rng: random.Random) -> GovernanceConfig:
    """A governance config small enough for the concrete explorer: 2-3 groups over 1-3
    levels, a short run, small patience and budget, and every flag either way."""
    n = rng.choice((2, 3))
    levels = rng.randint(1, n)
    # every level holds a group, levels in group order
    cuts = sorted(rng.sample(range(1, n), levels - 1)) if levels > 1 else []
    level_of = [sum(i >= c for c in cuts) for i in range(n)]
    floor, batch = rng.randint(0, 2), rng.randint(2, 4)
    dormant = rng.choice(("frozen", "bypass"))
    return parse_governance(
        {
            "total_steps": rng.randint(4, 7),
            "finish_window": rng.randint(0, 2),
            "groups": [
                {"name": f"g{i}", "patterns": [f"g{i}.*"], "level": level_of[i]} for i in range(n)
            ],
            "governor": {
                "signal_threshold": 0.05,
                "window": 2,
                "wake_threshold": 0.2,
                "patience": rng.randint(1, 2),
                "max_awakenings": rng.randint(0, 1),
                "multipliers": {
                    "ACTIVE": rng.choice((1, 2)),
                    "COOLING": rng.choice((0.5, 1)),
                    "AWAKENED": rng.choice((1, 2)),
                },
            },
            "hierarchy": {
                "levels": levels,
                "emergency_fraction": rng.choice((0.5, 0.6, 0.75, 1.0)),
                "dormant": dormant,
                "grow": rng.choice(("stack", "none")) if dormant == "bypass" else "none",
                "converge_after_lower": rng.random() < 0.5,
                "converge_after_upper": rng.random() < 0.5,
            },
            "budget": {
                "master": rng.randint(n, 3 * n),
                "floor": floor,
                "ceiling": rng.randint(max(floor, 1), batch),
            },
            "router": {
                "batch_size": batch,
                "warmup_steps": rng.randint(0, 3),
                "scorer": "loss",
            },
        }
    )


def side_by_side(cfg: GovernanceConfig) -> dict[str, str | None]:
    """The first invariant each explorer finds violated (None: none), concrete and
    abstract; `concrete` is "incomplete" where the state bound cut the search short."""
    concrete = explore(cfg, max_states=MAX_STATES)
    abstract = explore_abstract(cfg)
    found = concrete.violation.invariant if concrete.violation else None
    if found is None and concrete.graph.number_of_nodes() >= MAX_STATES:
        found = "incomplete"
    return {
        "concrete": found,
        "abstract": abstract.violation.invariant if abstract.violation else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=12)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    only_concrete = 0
    for i in range(args.count):
        cfg = random_config(rng)
        result = side_by_side(cfg)
        blind = result["concrete"] not in (None, "incomplete") and result["abstract"] is None
        only_concrete += blind
        print(json.dumps({"config": i, **result, "only_concrete": blind}), flush=True)
    print(json.dumps({"configs": args.count, "only_concrete": only_concrete}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
