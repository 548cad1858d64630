--------------------------- MODULE GovernedTraining ---------------------------
(***************************************************************************)
(* One governance step over every group; Python: governance/step.py.       *)
(*                                                                         *)
(* The state is exactly governance.state.GovernanceState: the clock, the   *)
(* active level, the quiet count, and per group its phase, seenHigh, lows  *)
(* and awakenings.  In one GovernanceStep every group's governor moves on  *)
(* its own observation (signal high or low, wake probe fired or not) at    *)
(* the same time, the clock ticks (saturating at Horizon), the hierarchy   *)
(* activates at most one level, then the run's end is counted              *)
(* (governance/completion.py): quiet counts the consecutive steps that     *)
(* ended with every group CONVERGED at the top level and no wake probe     *)
(* firing, saturating at FinishWindow; the step that brings it there       *)
(* takes the action Finish, and the trainer ends the run.  With            *)
(* FinishWindow = 0 quiet stays 0.  `computed` is the set of groups whose  *)
(* blocks run, HierarchyActivator's: under hierarchy.dormant "bypass" a    *)
(* DORMANT group's blocks are not computed, a step that activates a level  *)
(* grows it (its groups join), and nothing ever stops running.  With       *)
(* InLevelOrder (hierarchy.converge_after_lower) a group converges only    *)
(* once every group at a lower level was CONVERGED before the step         *)
(* (SettledBelow, hierarchy.py converge_after_lower): until then a patient *)
(* group waits, still COOLING and trained, one low short of Patience, and  *)
(* takes no action.  With AfterUpper (hierarchy.converge_after_upper) a    *)
(* group's lows count, and it converges, only while no level above it is   *)
(* DORMANT (UpperActive, hierarchy.py converge_after_upper): until then a  *)
(* low is no move at all.  The budget and the router decide, from the      *)
(* state after the step, what the next step may use; the decision is       *)
(* a function of the state and the groups' learning needs, so the budget   *)
(* and router invariants are checked for every vector of needs.            *)
(*                                                                         *)
(* Each rule is the one of its component spec, used through INSTANCE:      *)
(* ConvergenceGovernor's Observe, HierarchyActivator's NextLevel and       *)
(* Woken, FederatedBudget's Allocation, GradientRouter's Quota, and the    *)
(* components' own invariant predicates.                                   *)
(*                                                                         *)
(* Its models: MCGovernedTraining*.tla with MCGovernedTraining*.cfg        *)
(* (MCGovernedTraining.tla, generated, holds configs/small.yaml's          *)
(* constants).  A broken variant, its own or a component's, is an operator *)
(* of MCGovernedTrainingBroken.tla that a model's .cfg swaps in; a         *)
(* component's goes into that component's instances, e.g.                  *)
(*   MayBeginCooling <- [ConvergenceGovernor] NoColdGuard_MayBeginCooling  *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets, TLC

CONSTANTS
    GroupNames,         \* GroupNames[g]: group g's name (groups are 1..N, in config order)
    Level,              \* Level[g]: group g's hierarchy level
    Patience,           \* governor.patience
    MaxAwakenings,      \* governor.max_awakenings
    TotalSteps,         \* total_steps
    EmergencyFraction,  \* hierarchy.emergency_fraction as <<numerator, denominator>>
    Dormant,            \* hierarchy.dormant: "frozen" or "bypass"
    InLevelOrder,       \* hierarchy.converge_after_lower: TRUE or FALSE
    AfterUpper,         \* hierarchy.converge_after_upper: TRUE or FALSE
    Warmup,             \* router.warmup_steps
    Batch,              \* router.batch_size
    FinishWindow,       \* finish_window (0: the run never ends early)
    Master,             \* budget.master
    Floor,              \* budget.floor
    Ceiling,            \* budget.ceiling
    Multiplier,         \* governor.multipliers: [ACTIVE |-> m, COOLING |-> m, AWAKENED |-> m]
    Needs               \* the learning needs a group may report (naturals, see README)

ASSUME /\ DOMAIN GroupNames = DOMAIN Level
       /\ DOMAIN Multiplier = {"ACTIVE", "COOLING", "AWAKENED"}
       /\ Needs \subseteq Nat
       /\ FinishWindow \in Nat
       /\ InLevelOrder \in BOOLEAN
       /\ AfterUpper \in BOOLEAN

VARIABLES clock, activeLevel, phase, seenHigh, lows, awakenings, quiet,
          computed   \* the groups whose blocks run (governance/growth.py computed)
vars == <<clock, activeLevel, phase, seenHigh, lows, awakenings, quiet, computed>>

Groups == DOMAIN Level

Gov(g) == INSTANCE ConvergenceGovernor
              WITH phase <- phase[g], seenHigh <- seenHigh[g], lows <- lows[g],
                   awakenings <- awakenings[g]

Hier == INSTANCE HierarchyActivator WITH pending <- FALSE

Horizon == Hier!Horizon
MaxLevel == Hier!MaxLevel

-----------------------------------------------------------------------------
(* The step.                                                               *)

Frozen(g) == phase[g] \in Gov(g)!Frozen
Eligible == {g \in Groups : ~Frozen(g)}

\* ConvergeAfterLower's guard (hierarchy.converge_after_lower): with InLevelOrder,
\* group g may converge only while every group at a lower level is CONVERGED in
\* the state before the step; without it, always.
SettledBelow(g) ==
    ~InLevelOrder \/ \A h \in Groups : Level[h] < Level[g] => phase[h] = "CONVERGED"

\* ConvergeAfterUpper's guard (hierarchy.converge_after_upper): with AfterUpper,
\* group g's lows count only while no level above it is DORMANT in the state
\* before the step; without it, always.
UpperActive(g) ==
    ~AfterUpper \/ \A h \in Groups : Level[h] > Level[g] => phase[h] # "DORMANT"

\* One governor's move from its record r (convergence.observe with settled_below
\* and upper_active): ConvergenceGovernor's Observe, except that a Converge that
\* settled forbids, and a Cool or Converge that counting forbids, is no move at
\* all: the group waits, its record unchanged (still COOLING, and trained) and no
\* action taken.
Governed(g, r, high, wake, settled, counting) ==
    LET o == Gov(g)!Observe(r, high, wake) IN
    IF \/ o.action = "Converge" /\ ~settled
       \/ o.action \in {"Cool", "Converge"} /\ ~counting
    THEN Gov(g)!Result(r, "None") ELSE o

Name(g) == GroupNames[g]
Labels(f) == SelectSeq([g \in Groups |-> f[g]], LAMBDA s : s # "")

\* Nothing left to train after a step that reached level lvl and phases ph.
NothingToTrain(ph, lvl) ==
    /\ lvl = MaxLevel
    /\ \A g \in Groups : ph[g] = "CONVERGED"

\* The quiet count after a step (q before it) and whether the step finishes the run.
Quiet(q, ph, lvl, wake) ==
    IF FinishWindow > 0 /\ NothingToTrain(ph, lvl) /\ \A g \in Groups : ~wake[g]
    THEN IF q + 1 < FinishWindow THEN q + 1 ELSE FinishWindow
    ELSE 0

\* The outcome of one step under one observation per group (high[g]: g's
\* signal is high, wake[g]: g's wake probe fired): the next clock, level and
\* group records, and the actions taken in the order step.py reports them
\* (governor moves in group order, then ActivateLevel, then each Activate,
\* then Finish), and the groups computed after it (a grown level joins).
Step(high, wake) ==
    LET moved == [g \in Groups |->
                     Governed(g, Gov(g)!Current, high[g], wake[g], SettledBelow(g),
                              UpperActive(g))]
        movedPhase == [g \in Groups |-> moved[g].next.phase]
        c == Hier!Tick(clock)
        lvl == Hier!NextLevel(movedPhase, activeLevel, c)
        woken == IF lvl = activeLevel THEN {} ELSE Hier!Woken(movedPhase, lvl)
        refrozen == IF lvl = activeLevel THEN {} ELSE Hier!Refrozen(movedPhase, lvl)
        groups == [g \in Groups |->
                      CASE g \in woken -> Gov(g)!Activated(moved[g].next)
                        [] g \in refrozen -> [moved[g].next EXCEPT !.phase = "DORMANT"]
                        [] OTHER -> moved[g].next]
        governed == Labels([g \in Groups |->
                        IF moved[g].action = "None" THEN ""
                        ELSE moved[g].action \o "(" \o Name(g) \o ")"])
        activated == IF lvl = activeLevel THEN << >>
                     ELSE <<"ActivateLevel(" \o ToString(lvl) \o ")">>
                          \o Labels([g \in Groups |->
                                 IF g \in woken THEN "Activate(" \o Name(g) \o ")" ELSE ""])
        ph == [g \in Groups |-> groups[g].phase]
        q == Quiet(quiet, ph, lvl, wake)
        finish == IF q = FinishWindow /\ quiet < q THEN <<"Finish">> ELSE << >>
    IN [clock |-> c, level |-> lvl, groups |-> groups, quiet |-> q,
        computed |-> Hier!NextComputed(computed, ph, activeLevel, lvl),
        actions |-> governed \o activated \o finish]

\* The observations Next offers: each group's signal only where its phase
\* reads it, its wake probe only where its phase reads that, as
\* governance/explore.py enumerates them.  ConvergenceGovernor's
\* ReadsOnlyItsInputs shows that an input a phase does not read changes
\* nothing, so no behaviour is lost; GovernanceStep itself takes any
\* observation, e.g. one recorded in a trace.
Signals == {high \in [Groups -> BOOLEAN] : \A g \in Groups :
                high[g] => Gov(g)!ReadsSignal(phase[g])}
Wakes == {wake \in [Groups -> BOOLEAN] : \A g \in Groups : wake[g] => Gov(g)!ReadsWake(phase[g])}

Apply(s) == /\ clock' = s.clock
            /\ activeLevel' = s.level
            /\ phase' = [g \in Groups |-> s.groups[g].phase]
            /\ seenHigh' = [g \in Groups |-> s.groups[g].seenHigh]
            /\ lows' = [g \in Groups |-> s.groups[g].lows]
            /\ awakenings' = [g \in Groups |-> s.groups[g].awakenings]
            /\ quiet' = s.quiet
            /\ computed' = s.computed

GovernanceStep(high, wake) == Apply(Step(high, wake))

Init == /\ clock = 0
        /\ activeLevel = 0
        /\ phase = [g \in Groups |-> IF Level[g] = 0 THEN "ACTIVE" ELSE "DORMANT"]
        /\ seenHigh = [g \in Groups |-> FALSE]
        /\ lows = [g \in Groups |-> 0]
        /\ awakenings = [g \in Groups |-> 0]
        /\ quiet = 0
        /\ computed = Hier!InitComputed

Next == \E high \in Signals, wake \in Wakes : GovernanceStep(high, wake)

Spec == Init /\ [][Next]_vars
FairSpec == Spec /\ WF_vars(Next)

-----------------------------------------------------------------------------
(* The decision for the next step, for a vector of learning needs.        *)

NeedVectors == [Groups -> Needs]
WeightValues == {0} \cup {n * Multiplier[p] : n \in Needs, p \in DOMAIN Multiplier}

Weight(nd) == [g \in Groups |-> IF g \in Eligible THEN nd[g] * Multiplier[phase[g]] ELSE 0]

\* The budget, facing this step's request.
Budget(nd) == INSTANCE FederatedBudget
                  WITH eligible <- Eligible, weight <- Weight(nd),
                       units <- [g \in Groups |-> 0], stage <- "request",
                       Weights <- WeightValues

Decision(nd) == Budget(nd)!Decision

\* The router of group g, holding u units and routing quota q.
Router(g, u, q) == INSTANCE GradientRouter
                       WITH frozen <- Frozen(g), units <- u, quota <- q, routed <- {},
                            scores <- [i \in 1..Batch |-> 0], stage <- "routed",
                            MaxUnits <- Ceiling, Scores <- {0}

\* What the next step may use: budget units, the budget's action and each
\* group's quota, for every vector of needs.
Plan(nd) == LET d == Decision(nd) IN
            [units |-> d.units, action |-> d.action,
             quota |-> [g \in Groups |-> Router(g, d.units[g], 0)!QuotaNow]]
Plans == [nd \in NeedVectors |-> Plan(nd)]   \* use as TLCEval(Plans): computed once per check

\* The same decision as a function of its inputs, in the vocabulary of an audit
\* record: for a state with phases ph and clock c and the needs nd, the budget
\* units, the budget action, each group's quota and the warmup flag.  Trace
\* validation checks recorded decisions with it, and PlanConformance.tla the
\* Python core's decide() in every reachable state.
DecisionFor(ph, c, nd) ==
    LET e == {g \in Groups : ph[g] \notin Gov(g)!Frozen}
        w == [g \in Groups |-> IF g \in e THEN nd[g] * Multiplier[ph[g]] ELSE 0]
        d == Budget(nd)!Allocation(w, e)
    IN [units |-> d.units, budgetAction |-> d.action,
        quota |-> [g \in Groups |-> Router(g, 0, 0)!Quota(g \notin e, d.units[g], c)],
        warmup |-> Router(1, 0, 0)!InWarmup(c)]

-----------------------------------------------------------------------------
(* Invariants, as in governance/invariants.py, each the component's own.  *)

TypeOK == /\ clock \in 0..Horizon
          /\ activeLevel \in 0..MaxLevel
          /\ quiet \in 0..FinishWindow
          /\ computed \in SUBSET Groups
          /\ \A g \in Groups : Gov(g)!TypeOK
          /\ LET p == TLCEval(Plans) IN
                \A nd \in NeedVectors : /\ p[nd].units \in [Groups -> Nat]
                                       /\ p[nd].quota \in [Groups -> Nat]

NoCoolingFromCold == \A g \in Groups : Gov(g)!NoCoolingFromCold
AwakeningsBounded == \A g \in Groups : Gov(g)!AwakeningsBounded

DormantAboveLevel == Hier!DormantAboveLevel
ComputedIsNotDormant == Hier!ComputedIsNotDormant

\* Written out, not through NothingToTrain: steps count towards the run's end
\* only while the top level is active and every group is CONVERGED.
FinishOnlyWhenAllConverged ==
    quiet > 0 => /\ activeLevel = MaxLevel
                 /\ \A g \in Groups : phase[g] = "CONVERGED"
LevelsMonotone == [][Hier!LevelNeverFalls]_vars
NoSkippedLevels == [][Hier!LevelRisesByAtMostOne]_vars
ActivationGated == [][Hier!ActivationIsGated]_vars
ComputedNeverShrinks == [][Hier!KeepsComputing]_vars

\* With InLevelOrder, a group that converged in a step did so while every group at
\* a lower level was CONVERGED before it (written out, not through SettledBelow).
ConvergeAfterLower ==
    [][\A g \in Groups :
          (phase[g] = "COOLING" /\ phase'[g] = "CONVERGED")
              => \/ ~InLevelOrder
                 \/ \A h \in Groups : Level[h] < Level[g] => phase[h] = "CONVERGED"]_vars

\* With AfterUpper, a group's lows rose, or it converged, in a step only while no
\* level above it was DORMANT before it (written out, not through UpperActive).
ConvergeAfterUpper ==
    [][\A g \in Groups :
          (phase[g] = "COOLING" /\ (phase'[g] = "CONVERGED" \/ lows'[g] > lows[g]))
              => \/ ~AfterUpper
                 \/ \A h \in Groups : Level[h] > Level[g] => phase[h] # "DORMANT"]_vars

BudgetConserved ==
    LET p == TLCEval(Plans) IN \A nd \in NeedVectors : Budget(nd)!ConservedFor(p[nd].units)
BudgetWithinBounds ==
    LET p == TLCEval(Plans) IN
    \A nd \in NeedVectors : Budget(nd)!WithinBoundsFor(p[nd].units, Eligible, p[nd].action)
BudgetWorkConserving ==
    LET p == TLCEval(Plans) IN \A nd \in NeedVectors : Budget(nd)!WorkConservingFor(p[nd].units, Eligible)
NoBudgetForFrozen ==
    LET p == TLCEval(Plans) IN
    \A nd \in NeedVectors : Budget(nd)!NoBudgetForFrozenFor(p[nd].units, Eligible)

QuotaWithinBatch ==
    LET p == TLCEval(Plans) IN
    \A nd \in NeedVectors, g \in Groups :
        Router(g, p[nd].units[g], p[nd].quota[g])!QuotaWithinBatch
FrozenGetsNoGradient ==
    LET p == TLCEval(Plans) IN
    \A nd \in NeedVectors, g \in Groups :
        Router(g, p[nd].units[g], p[nd].quota[g])!FrozenGetsNoGradient

(* Liveness: the deadline brings the top level in whatever the signals do, *)
(* and the bounded awakenings make the system stop waking up.              *)
TopLevelEventuallyActive == <>(activeLevel = MaxLevel)
AwakeningsStabilise == <>[][UNCHANGED awakenings]_vars

=============================================================================
