"""A user's own governance config, checked by TLC in the abstract model.

Two TLC runs, the twins of `govtrain explore`'s first two parts
(governance/abstraction.py): ConvergenceGovernor at the config's patience and
awakenings (one group's governor, every counter exactly), and
GovernedTrainingAbstract at all of the config's constants (the groups composed by
phase, counted per level, with the clock and quiet count as intervals), with the
budget and router invariants for every vector of `needs` in every abstract state.
`GovernedTraining_Refines` in the manifest is the evidence that the abstraction
is sound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from govtrain.formal.compare import _Workdir, render_training_module
from govtrain.formal.output import TLCResult
from govtrain.formal.toolchain import Toolchain, run_tlc
from govtrain.formal.vocabulary import training_constants
from govtrain.governance.config import GovernanceConfig

GOVERNOR_INVARIANTS = "TypeOK NoCoolingFromCold AwakeningsBounded ReadsOnlyItsInputs"
ABSTRACT_INVARIANTS = (
    "ATypeOK DormantAboveLevel ComputedIsNotDormant FinishOnlyWhenAllConverged BudgetConserved "
    "BudgetWithinBounds BudgetWorkConserving NoBudgetForFrozen QuotaWithinBatch "
    "FrozenGetsNoGradient"
)
ABSTRACT_PROPERTIES = (
    "LevelsMonotone NoSkippedLevels ActivationGated ComputedNeverShrinks ConvergeAfterLower "
    "ConvergeAfterUpper"
)


@dataclass(frozen=True)
class ModelRun:
    name: str
    result: TLCResult


def check_config(
    cfg: GovernanceConfig,
    toolchain: Toolchain,
    *,
    needs: Sequence[int] = (1,),
    source: str = "",
    timeout: float = 600,
) -> list[ModelRun]:
    """TLC on one governor and on the abstract composition of `cfg`."""
    work = _Workdir()
    try:
        gov = work.write(
            "UserGovernor.cfg",
            "CONSTANTS\n"
            f"    Patience = {cfg.governor.patience}\n"
            f"    MaxAwakenings = {cfg.governor.max_awakenings}\n"
            "SPECIFICATION Spec\nCHECK_DEADLOCK FALSE\n"
            f"INVARIANTS {GOVERNOR_INVARIANTS}\n",
        )
        module = render_training_module(
            cfg, "UserAbstract", extends="GovernedTrainingAbstract", source=source, needs=needs
        )
        spec = work.write("UserAbstract.tla", module)
        constants = [f"    {name} <- MC_{name}" for name in training_constants(cfg, needs)]
        composed = work.write(
            "UserAbstract.cfg",
            "\n".join(["CONSTANTS", *constants])
            + "\nSPECIFICATION ASpec\nVIEW CountedView\nCHECK_DEADLOCK FALSE\n"
            f"INVARIANTS {ABSTRACT_INVARIANTS}\nPROPERTIES {ABSTRACT_PROPERTIES}\n",
        )
        runs = [
            ("ConvergenceGovernor", work.path / "ConvergenceGovernor.tla", gov),
            ("GovernedTrainingAbstract", spec, composed),
        ]
        return [
            ModelRun(name, run_tlc(module_path, config, timeout=timeout, toolchain=toolchain))
            for name, module_path, config in runs
        ]
    finally:
        work.close()
