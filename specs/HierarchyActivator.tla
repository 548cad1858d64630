-------------------------- MODULE HierarchyActivator --------------------------
(***************************************************************************)
(* Coarse-to-fine activation; Python: governance/hierarchy.py.             *)
(*                                                                         *)
(* Level 0 starts active.  After the governors of a governance step have   *)
(* moved, level k+1 activates (ActivateLevel, which also Activates every   *)
(* DORMANT group at or below it) when every group at levels <= k is        *)
(* CONVERGED, or when the clock has reached k+1's emergency deadline.  At  *)
(* most one level per step, never backwards.                               *)
(*                                                                         *)
(* Here the governors are an arbitrary environment (GovernorsMove may put  *)
(* every non-DORMANT group in any non-DORMANT phase), so the invariants    *)
(* hold whatever the governors do.  GovernedTraining.tla uses NextLevel    *)
(* and Woken with the real governors.                                      *)
(*                                                                         *)
(* Its models: MCHierarchyActivator.tla with MCHierarchyActivator*.cfg;    *)
(* the broken variants are operators of MCHierarchyActivator.tla that a    *)
(* model's .cfg swaps in.                                                  *)
(***************************************************************************)
EXTENDS Naturals

CONSTANTS
    Level,              \* Level[g]: group g's hierarchy level; groups are 1..N
    TotalSteps,         \* total_steps of the run
    EmergencyFraction,  \* hierarchy.emergency_fraction as <<numerator, denominator>>
    Warmup              \* router.warmup_steps (the clock saturates past it too)

Groups == DOMAIN Level
Max(a, b) == IF a >= b THEN a ELSE b
MaxLevel == CHOOSE m \in {Level[g] : g \in Groups} : \A g \in Groups : Level[g] <= m

ASSUME /\ \A g \in Groups : Level[g] \in Nat
       /\ \A k \in 0..MaxLevel : \E g \in Groups : Level[g] = k
       /\ TotalSteps \in Nat \ {0}
       /\ EmergencyFraction[1] \in Nat \ {0} /\ EmergencyFraction[2] \in Nat \ {0}
       /\ EmergencyFraction[1] <= EmergencyFraction[2]
       /\ Warmup \in Nat

VARIABLES
    activeLevel,  \* the highest active level
    clock,        \* governance steps taken, saturating at Horizon
    phase,        \* phase[g]: group g's governor phase
    pending       \* the governors have moved; the activator has not yet decided this step
hvars == <<activeLevel, clock, phase, pending>>

Phases == {"DORMANT", "ACTIVE", "COOLING", "CONVERGED", "AWAKENED"}

(* The step by which `level` activates even if lower levels never converge: *)
(* ceil(fraction * TotalSteps * k / MaxLevel), at least 1, in exact        *)
(* integer arithmetic.                                                     *)
CeilDiv(a, b) == (a + b - 1) \div b
Deadline(k) == IF k = 0 THEN 0
               ELSE Max(1, CeilDiv(EmergencyFraction[1] * TotalSteps * k,
                                   EmergencyFraction[2] * MaxLevel))

\* Past Horizon no threshold (warmup, deadline) can change, so the clock stops there.
Horizon == Max(Warmup, Deadline(MaxLevel))
Tick(c) == IF c + 1 > Horizon THEN Horizon ELSE c + 1

-----------------------------------------------------------------------------
(* The activator's decision, as functions of the moved phases.             *)

\* ActivationGated: every group at or below `lvl` has converged.
GateOpen(ph, lvl) == \A g \in Groups : Level[g] <= lvl => ph[g] = "CONVERGED"

\* The run is far enough along that level k must start learning regardless.
Emergency(c, k) == c >= Deadline(k)

\* The level above lvl is due: the gate is open or its deadline has come.
LevelDue(ph, lvl, c) == lvl < MaxLevel /\ (GateOpen(ph, lvl) \/ Emergency(c, lvl + 1))

\* The active level after this step: one more when it is due.
NextLevel(ph, lvl, c) == IF LevelDue(ph, lvl, c) THEN lvl + 1 ELSE lvl

\* The DORMANT groups that Activate when `lvl` becomes the active level.
Woken(ph, lvl) == {g \in Groups : ph[g] = "DORMANT" /\ Level[g] <= lvl}

\* The groups above `lvl` that are not DORMANT, frozen again if the level
\* ever fell (it never does: DormantAboveLevel, LevelsMonotone).
Refrozen(ph, lvl) == {g \in Groups : ph[g] # "DORMANT" /\ Level[g] > lvl}

AfterActivation(ph, lvl) ==
    [g \in Groups |-> CASE g \in Woken(ph, lvl) -> "ACTIVE"
                        [] g \in Refrozen(ph, lvl) -> "DORMANT"
                        [] OTHER -> ph[g]]

-----------------------------------------------------------------------------
(* The activator as a state machine: each governance step is GovernorsMove *)
(* followed by exactly one of ActivateLevel and KeepLevel.                 *)

Init == /\ activeLevel = 0
        /\ clock = 0
        /\ phase = [g \in Groups |-> IF Level[g] = 0 THEN "ACTIVE" ELSE "DORMANT"]
        /\ pending = FALSE

GovernorsMove ==
    /\ ~pending
    /\ \E ph \in [Groups -> Phases] :
          /\ \A g \in Groups : (ph[g] = "DORMANT") = (phase[g] = "DORMANT")
          /\ phase' = ph
    /\ clock' = Tick(clock)
    /\ pending' = TRUE
    /\ UNCHANGED activeLevel

ActivateLevel ==
    /\ pending
    /\ NextLevel(phase, activeLevel, clock) # activeLevel
    /\ activeLevel' = NextLevel(phase, activeLevel, clock)
    /\ phase' = AfterActivation(phase, activeLevel')
    /\ pending' = FALSE
    /\ UNCHANGED clock

KeepLevel ==
    /\ pending
    /\ NextLevel(phase, activeLevel, clock) = activeLevel
    /\ pending' = FALSE
    /\ UNCHANGED <<activeLevel, clock, phase>>

Next == GovernorsMove \/ ActivateLevel \/ KeepLevel

Spec == Init /\ [][Next]_hvars
FairSpec == Spec /\ WF_hvars(GovernorsMove) /\ WF_hvars(ActivateLevel) /\ WF_hvars(KeepLevel)

-----------------------------------------------------------------------------
(* Invariants and properties, as in governance/invariants.py.             *)

TypeOK == /\ activeLevel \in 0..MaxLevel
          /\ clock \in 0..Horizon
          /\ phase \in [Groups -> Phases]
          /\ pending \in BOOLEAN

\* DORMANT means "above the active level" and nothing else.
DormantAboveLevel == \A g \in Groups : (Level[g] > activeLevel) = (phase[g] = "DORMANT")

(* The transition properties, as predicates of one step so that            *)
(* GovernedTraining.tla can state them over its own variables.             *)
LevelNeverFalls == activeLevel' >= activeLevel
LevelRisesByAtMostOne == activeLevel' <= activeLevel + 1
\* A level activates only when every lower group has converged, or at its deadline.
ActivationIsGated ==
    activeLevel' > activeLevel =>
        \/ \A g \in Groups : Level[g] < activeLevel' => phase'[g] = "CONVERGED"
        \/ clock' >= Deadline(activeLevel')

LevelsMonotone == [][LevelNeverFalls]_hvars
NoSkippedLevels == [][LevelRisesByAtMostOne]_hvars
ActivationGated == [][ActivationIsGated]_hvars

(* The emergency deadline makes the top level active in every run, however *)
(* the governors behave.                                                   *)
TopLevelEventuallyActive == <>(activeLevel = MaxLevel)

(* Without relying on the deadline: if from some point on every activated  *)
(* group stays converged, the top level becomes active.                    *)
ConvergedLevelsAdvance ==
    <>[](\A g \in Groups : phase[g] \in {"CONVERGED", "DORMANT"})
        => <>(activeLevel = MaxLevel)

=============================================================================
