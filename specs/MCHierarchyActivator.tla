------------------------ MODULE MCHierarchyActivator ------------------------
(***************************************************************************)
(* The models of HierarchyActivator (MCHierarchyActivator*.cfg): their     *)
(* constants (TLC's .cfg files cannot write tuples) and the activator's    *)
(* broken variants, each an operator <Variant>_<Operator> that a model's   *)
(* .cfg swaps in (GateOpen <- GateIgnoresCooling_GateOpen).                *)
(***************************************************************************)
EXTENDS HierarchyActivator

\* configs/small.yaml: embed and body at level 0, head at level 1; 8 steps,
\* emergency at three quarters of the run, one warmup step.
SmallLevel == <<0, 0, 1>>
SmallSteps == 8
SmallEmergency == <<3, 4>>
SmallWarmup == 1

\* Three levels whose emergency deadlines coincide (2 steps, fraction 1/2:
\* both level 1 and level 2 are due at step 1), so a cascade would skip one.
ThreeLevel == <<0, 1, 2>>
ThreeSteps == 2
Half == <<1, 2>>
ThreeWarmup == 0

-----------------------------------------------------------------------------
(* Broken variants.                                                        *)

\* The level falls back (and its groups freeze) when a lower group awakens:
\* refutes LevelsMonotone.
RollbackOnAwaken_NextLevel(ph, lvl, c) ==
    CASE lvl > 0 /\ \E g \in Groups : Level[g] < lvl /\ ph[g] = "AWAKENED" -> lvl - 1
      [] LevelDue(ph, lvl, c) -> lvl + 1
      [] OTHER -> lvl

\* Activation loops while levels are due instead of taking one per step:
\* refutes NoSkippedLevels.
RECURSIVE Cascade(_, _, _)
Cascade(ph, lvl, c) == IF LevelDue(ph, lvl, c) THEN Cascade(ph, lvl + 1, c) ELSE lvl
CascadeLevels_NextLevel(ph, lvl, c) == Cascade(ph, lvl, c)

\* ActivateLevel wakes the groups below the new level, not at it (off by one):
\* refutes DormantAboveLevel.
ActivateBelowOnly_Woken(ph, lvl) == {g \in Groups : ph[g] = "DORMANT" /\ Level[g] < lvl}

\* The gate counts COOLING groups as converged: refutes ActivationGated.
GateIgnoresCooling_GateOpen(ph, lvl) ==
    \A g \in Groups : Level[g] <= lvl => ph[g] \in {"CONVERGED", "COOLING"}

\* No emergency deadline: governors that never converge keep the top level
\* dormant forever, which refutes TopLevelEventuallyActive (ConvergedLevelsAdvance
\* still holds: the gate alone advances converged levels).
NoEmergency_Emergency(c, k) == FALSE

\* ActivateLevel leaves `computed` as it was: under bypass the computed set is
\* the groups at or below the level before the step, so an activated level's
\* blocks start one step late (its groups learn through blocks that do not
\* run): refutes ComputedIsNotDormant (ComputedNeverShrinks still holds).
GrowLate_NextComputed(c, ph, lvl, next) ==
    IF Dormant = "bypass" THEN c \cup {g \in Groups : Level[g] <= lvl} ELSE c

\* A CONVERGED group stops running: skipping a converged level's blocks,
\* although the levels above it were trained on their output.  Refutes
\* ComputedNeverShrinks (and ComputedIsNotDormant in the same state, which
\* TLC names first, so its model leaves that invariant out).
SkipConverged_NextComputed(c, ph, lvl, next) ==
    (IF Grows(lvl, next) THEN c \cup LevelGroups(next) ELSE c)
        \ {g \in Groups : ph[g] = "CONVERGED"}
=============================================================================
