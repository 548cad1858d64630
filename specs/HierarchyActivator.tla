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
(* Which groups' blocks run (governance/growth.py): with the dormant       *)
(* policy "bypass" a DORMANT group's blocks are not computed at all, with  *)
(* "frozen" they run without gradients.  `computed` starts as the level-0  *)
(* groups under bypass (every group under frozen) and ActivateLevel adds   *)
(* exactly the activated level's groups (Grows: the level's blocks grow);  *)
(* nothing else changes it, so nothing ever stops being computed: a        *)
(* CONVERGED group still runs, frozen, because the levels above it were    *)
(* trained on its output.                                                  *)
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
    Warmup,             \* router.warmup_steps (the clock saturates past it too)
    Dormant             \* hierarchy.dormant: "frozen" or "bypass"

Groups == DOMAIN Level
Max(a, b) == IF a >= b THEN a ELSE b
MaxLevel == CHOOSE m \in {Level[g] : g \in Groups} : \A g \in Groups : Level[g] <= m

ASSUME /\ \A g \in Groups : Level[g] \in Nat
       /\ \A k \in 0..MaxLevel : \E g \in Groups : Level[g] = k
       /\ TotalSteps \in Nat \ {0}
       /\ EmergencyFraction[1] \in Nat \ {0} /\ EmergencyFraction[2] \in Nat \ {0}
       /\ EmergencyFraction[1] <= EmergencyFraction[2]
       /\ Warmup \in Nat
       /\ Dormant \in {"frozen", "bypass"}

VARIABLES
    activeLevel,  \* the highest active level
    clock,        \* governance steps taken, saturating at Horizon
    phase,        \* phase[g]: group g's governor phase
    pending,      \* the governors have moved; the activator has not yet decided this step
    computed      \* the groups whose blocks run in the forward
hvars == <<activeLevel, clock, phase, pending, computed>>

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
(* Which blocks run; Python: governance/growth.py.                         *)

\* Computed: the groups whose blocks run for phases ph (growth.computed):
\* every group but a DORMANT one under bypass.
Computed(ph) == {g \in Groups : ~(Dormant = "bypass" /\ ph[g] = "DORMANT")}

\* The groups computed before the first step.
InitComputed == {g \in Groups : Dormant = "frozen" \/ Level[g] = 0}

\* Grows: a step from level lvl to level next grows the model (growth.grows):
\* a level activates while dormant levels are bypassed, and its blocks start.
Grows(lvl, next) == Dormant = "bypass" /\ next > lvl

LevelGroups(k) == {g \in Groups : Level[g] = k}

\* The groups computed after a step from level lvl to level next, c before it
\* and ph the phases after it: a grown level's groups join, and nothing leaves
\* whatever the governors did (the rule reads no phase: a CONVERGED group
\* still runs).  Decided once per step, after the activator, as
\* pipeline/governor.py sets the blocks before the next step.
NextComputed(c, ph, lvl, next) == IF Grows(lvl, next) THEN c \cup LevelGroups(next) ELSE c

-----------------------------------------------------------------------------
(* The activator as a state machine: each governance step is GovernorsMove *)
(* followed by exactly one of ActivateLevel and KeepLevel.                 *)

Init == /\ activeLevel = 0
        /\ clock = 0
        /\ phase = [g \in Groups |-> IF Level[g] = 0 THEN "ACTIVE" ELSE "DORMANT"]
        /\ pending = FALSE
        /\ computed = InitComputed

GovernorsMove ==
    /\ ~pending
    /\ \E ph \in [Groups -> Phases] :
          /\ \A g \in Groups : (ph[g] = "DORMANT") = (phase[g] = "DORMANT")
          /\ phase' = ph
    /\ clock' = Tick(clock)
    /\ pending' = TRUE
    /\ UNCHANGED <<activeLevel, computed>>

ActivateLevel ==
    /\ pending
    /\ NextLevel(phase, activeLevel, clock) # activeLevel
    /\ activeLevel' = NextLevel(phase, activeLevel, clock)
    /\ phase' = AfterActivation(phase, activeLevel')
    /\ computed' = NextComputed(computed, phase', activeLevel, activeLevel')
    /\ pending' = FALSE
    /\ UNCHANGED clock

KeepLevel ==
    /\ pending
    /\ NextLevel(phase, activeLevel, clock) = activeLevel
    /\ computed' = NextComputed(computed, phase, activeLevel, activeLevel)
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
          /\ computed \in SUBSET Groups

\* DORMANT means "above the active level" and nothing else.
DormantAboveLevel == \A g \in Groups : (Level[g] > activeLevel) = (phase[g] = "DORMANT")

\* The blocks that run are exactly those the phases say: under bypass a
\* DORMANT level computes nothing (and so receives no gradient) and every
\* other group runs; under frozen every group runs.
ComputedIsNotDormant == computed = Computed(phase)

(* The transition properties, as predicates of one step so that            *)
(* GovernedTraining.tla can state them over its own variables.             *)
LevelNeverFalls == activeLevel' >= activeLevel
LevelRisesByAtMostOne == activeLevel' <= activeLevel + 1
\* No group's blocks stop running.
KeepsComputing == computed \subseteq computed'
\* A level activates only when every lower group has converged, or at its deadline.
ActivationIsGated ==
    activeLevel' > activeLevel =>
        \/ \A g \in Groups : Level[g] < activeLevel' => phase'[g] = "CONVERGED"
        \/ clock' >= Deadline(activeLevel')

LevelsMonotone == [][LevelNeverFalls]_hvars
NoSkippedLevels == [][LevelRisesByAtMostOne]_hvars
ActivationGated == [][ActivationIsGated]_hvars
ComputedNeverShrinks == [][KeepsComputing]_hvars

(* The emergency deadline makes the top level active in every run, however *)
(* the governors behave.                                                   *)
TopLevelEventuallyActive == <>(activeLevel = MaxLevel)

(* Without relying on the deadline: if from some point on every activated  *)
(* group stays converged, the top level becomes active.                    *)
ConvergedLevelsAdvance ==
    <>[](\A g \in Groups : phase[g] \in {"CONVERGED", "DORMANT"})
        => <>(activeLevel = MaxLevel)

=============================================================================
