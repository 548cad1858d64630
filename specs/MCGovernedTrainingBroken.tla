--------------------- MODULE MCGovernedTrainingBroken ---------------------
(***************************************************************************)
(* The broken variants GovernedTraining's models check at the bounds of    *)
(* configs/small.yaml (MCGovernedTraining_<Variant>.cfg): its own,         *)
(* FinishWhileCooling, AlwaysSettled (with InLevelOrder = TRUE) and        *)
(* UpperAlwaysActive (with AfterUpper = TRUE), and                         *)
(* the components' that show their invariants can fail inside the          *)
(* composition (GrowLate and SkipConverged with dormant levels bypassed,   *)
(* Dormant = "bypass").  A component's variant is the                      *)
(* operator its MC module defines, reached through an instance of that     *)
(* module; the model's .cfg swaps it into the component's instances, e.g.  *)
(*   MayBeginCooling <- [ConvergenceGovernor] NoColdGuard_MayBeginCooling  *)
(* (MCGovernedTrainingInductive.tla extends this module for its variant.)  *)
(***************************************************************************)
EXTENDS MCGovernedTraining

\* The run's end counts a COOLING group (still training) as done: refutes
\* FinishOnlyWhenAllConverged.
FinishWhileCooling_NothingToTrain(ph, lvl) ==
    /\ lvl = MaxLevel
    /\ \A g \in Groups : ph[g] \in {"CONVERGED", "COOLING"}

\* ConvergeAfterLower's guard that lets every group converge: with InLevelOrder a
\* group converges while a group at a lower level still trains; refutes
\* ConvergeAfterLower.
AlwaysSettled_SettledBelow(g) == TRUE

\* ConvergeAfterUpper's guard that reads every level above as active: with
\* AfterUpper a group counts its lows and converges under a DORMANT level; refutes
\* ConvergeAfterUpper.
UpperAlwaysActive_UpperActive(g) == TRUE

(* The components' MC modules, for their variants (no state is read).      *)
GovernorMC == INSTANCE MCConvergenceGovernor
HierarchyMC == INSTANCE MCHierarchyActivator WITH pending <- FALSE
BudgetMC == INSTANCE MCFederatedBudget
                WITH eligible <- {}, weight <- [g \in Groups |-> 0],
                     units <- [g \in Groups |-> 0], stage <- "request",
                     Weights <- WeightValues
RouterMC == INSTANCE MCGradientRouter
                WITH frozen <- FALSE, units <- 0, quota <- 0, routed <- {},
                     scores <- [i \in 1..Batch |-> 0], stage <- "routed",
                     MaxUnits <- Ceiling, Scores <- {0}

NoColdGuard_MayBeginCooling(g) == GovernorMC!NoColdGuard_MayBeginCooling(g)
GateIgnoresCooling_GateOpen(ph, lvl) == HierarchyMC!GateIgnoresCooling_GateOpen(ph, lvl)
GrowLate_NextComputed(c, ph, lvl, next) == HierarchyMC!GrowLate_NextComputed(c, ph, lvl, next)
SkipConverged_NextComputed(c, ph, lvl, next) ==
    HierarchyMC!SkipConverged_NextComputed(c, ph, lvl, next)
ProportionalFloor_StartAllocate(w, e) == BudgetMC!ProportionalFloor_StartAllocate(w, e)
ProportionalFloor_HandoutDone(u, e) == BudgetMC!ProportionalFloor_HandoutDone(u, e)
NoBatchClamp_Quota(fr, u, c) == RouterMC!NoBatchClamp_Quota(fr, u, c)
=============================================================================
