------------------------ MODULE MCConvergenceGovernor ------------------------
(***************************************************************************)
(* The models of ConvergenceGovernor (MCConvergenceGovernor*.cfg) and its  *)
(* broken variants.  A variant is one operator of the spec, written here   *)
(* as <Variant>_<Operator> and swapped in by its model's .cfg, e.g.        *)
(*     MayBeginCooling <- NoColdGuard_MayBeginCooling                      *)
(* so the spec itself reads clean.  Each is refuted by TLC in a model of   *)
(* its own (specs/manifest.yaml): the invariants can fail.                 *)
(* GovernedTraining's models swap the same operators into its instances    *)
(* (MCGovernedTrainingBroken.tla).                                         *)
(***************************************************************************)
EXTENDS ConvergenceGovernor

\* BeginCooling without the seenHigh guard: refutes NoCoolingFromCold.
NoColdGuard_MayBeginCooling(g) == TRUE

\* Awaken while awakenings <= MaxAwakenings, off by one: refutes AwakeningsBounded.
AwakenBoundOffByOne_MayAwaken(g) == g.awakenings <= MaxAwakenings

\* Converge keeps the lows counter: refutes TypeOK.
LowsNotReset_ConvergedLows(l) == l

\* Cool does not count its low, so COOLING never converges: refutes
\* LowSignalConverges.
CoolForgetsLows_CountLow(g) == g.lows

\* Activate starts the group as if it had learned, so the guard lets it cool at
\* once.  NoCoolingFromCold, reading the same flag, cannot tell; the history
\* variable of MCConvergenceGovernorHistory (CoolsOnlyAfterLearning) can.
ActivateWarm_Activated(g) == GroupState("ACTIVE", TRUE, 0, g.awakenings)

\* COOLING declared deaf to the signal (GovernedTraining would then offer a
\* cooling group only low signals and never see a Reheat): refutes
\* ReadsOnlyItsInputs.
DeafCooling_ReadsSignal(p) == p \in {"ACTIVE", "AWAKENED"}
=============================================================================
