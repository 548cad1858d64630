------------------------ MODULE TraceGovernedTraining ------------------------
(***************************************************************************)
(* Trace validation: is a recorded run a behaviour of                      *)
(* GovernedTrainingLabelled?  Python: govtrain/formal/trace.py writes      *)
(* the trace (export_trace) and runs this module on it (validate_trace).   *)
(*                                                                         *)
(* The trace is ND-JSON, one line per event, in the spec's vocabulary:     *)
(*   Init            the constants of the run and its initial state;       *)
(*   GovernanceStep  the step number, the abstract observation of every    *)
(*                   group (high[g]: signal high, wake[g]: wake probe      *)
(*                   fired), the action labels step.py reported and the    *)
(*                   values of every variable after the step;              *)
(*   Rewind          a resume: the run restarts from step fromStep, in     *)
(*                   the state it had reached after step fromStep - 1.     *)
(* The cursor l counts the lines matched so far.  Each TraceNext step      *)
(* matches line l + 1: an Init line must be the spec's Init; a             *)
(* GovernanceStep line must carry the next step number, and the spec's     *)
(* GovernanceStep under the line's observation must reach exactly the      *)
(* recorded state and take exactly the recorded actions; a Rewind line     *)
(* must return to the state the trace reached at step fromStep - 1 (the    *)
(* last line that recorded that step, or Init for step 0), as              *)
(* govtrain/formal/replay.py rewinds.  Past a Rewind the run is a          *)
(* behaviour of the spec again, from a state it reached before.            *)
(*                                                                         *)
(* The spec's constants come from the trace's Init line, and so do the     *)
(* decisions: each GovernanceStep line also carries every group's need on  *)
(* the budget's grid (governance/budget.py need_grid: naturals), the       *)
(* decision the core made after the step (budget units, Allocate or        *)
(* Ration, quotas, warmup) and the quota each group was routed during the  *)
(* step.  The spec must make the same decision from the same needs         *)
(* (FederatedBudget's Allocation, GradientRouter's Quota), and the step    *)
(* must have routed what the decision before it allowed (plan: the whole   *)
(* batch in shadow mode, Init's enforced FALSE).  A dropped line breaks    *)
(* the step numbering; dropped lines at the end of a trace leave a prefix, *)
(* which is still a behaviour (the audit log's signed checkpoints detect   *)
(* truncation, not this module).                                           *)
(*                                                                         *)
(* Which blocks run (hierarchy.dormant "bypass", governance/growth.py):    *)
(* the Init line carries the model's blocks as step 0 records them, each   *)
(* with the group (1..N) that owns it, and each GovernanceStep line the    *)
(* blocks the record says the next step does not run (`bypassed`, present  *)
(* exactly when the run bypasses) and whether the step recorded a growth   *)
(* (`grows`).  The bypassed blocks must be exactly the blocks of the       *)
(* groups the spec's `computed` leaves out after the step (none in shadow  *)
(* mode, which runs every block), each listed once, so a block added to or *)
(* removed from the list is caught; a group that owns no block is never    *)
(* seen, and nothing is claimed about it.  A step records a growth exactly *)
(* when it Grows.                                                          *)
(*                                                                         *)
(* The constants include InLevelOrder (hierarchy.converge_after_lower)     *)
(* and AfterUpper (hierarchy.converge_after_upper), and a GovernanceStep   *)
(* line is matched by GovernedTraining's own Step, so with the flags a     *)
(* recorded Converge of a group whose groups below had not all converged,  *)
(* or a Cool or Converge under a DORMANT level, is rejected (the spec      *)
(* waits there), like any other step the spec does not take.               *)
(*                                                                         *)
(* The model (generated per run by trace_config) sets TraceFile, maps      *)
(* the constants to the Trace* definitions below and checks TraceSpec      *)
(* with VIEW TraceView, ALIAS TraceAlias, no deadlock checking, the        *)
(* invariant TraceMatched (first: a violation leaves the cursor on the     *)
(* last line that matched, and the alias shows what the spec makes of the  *)
(* next one), GovernedTraining's state invariants and the property         *)
(* StepsAreSpecSteps.                                                      *)
(***************************************************************************)
EXTENDS GovernedTrainingLabelled, Json, Sequences, Naturals, FiniteSets, TLC

CONSTANT TraceFile   \* absolute path of the ND-JSON trace

Trace == ndJsonDeserialize(TraceFile)

ASSUME /\ Len(Trace) >= 1
       /\ Trace[1].event = "Init"

-----------------------------------------------------------------------------
(* The constants of GovernedTraining for the traced run.                   *)

TraceConstants == Trace[1].constants
TraceGroupNames == TraceConstants.GroupNames
TraceLevel == TraceConstants.Level
TracePatience == TraceConstants.Patience
TraceMaxAwakenings == TraceConstants.MaxAwakenings
TraceTotalSteps == TraceConstants.TotalSteps
TraceEmergencyFraction == TraceConstants.EmergencyFraction
TraceDormant == TraceConstants.Dormant
TraceInLevelOrder == TraceConstants.InLevelOrder
TraceAfterUpper == TraceConstants.AfterUpper
TraceWarmup == TraceConstants.Warmup
TraceBatch == TraceConstants.Batch
TraceFinishWindow == TraceConstants.FinishWindow
TraceMaster == TraceConstants.Master
TraceFloor == TraceConstants.Floor
TraceCeiling == TraceConstants.Ceiling
TraceMultiplier == TraceConstants.Multiplier

\* Not in the trace and never evaluated by this module's checks (the needs a
\* step reports are in each line): a value that satisfies the assumptions.
UncheckedNeeds == {1}

\* FALSE for a shadow-mode run (train.mode: observe): it routes the whole batch.
Enforced == Trace[1].enforced

\* The model's blocks in forward order, each a record [name, group] (the group
\* counted from 1), as step 0 records them (<< >> when it records none:
\* hierarchy.dormant "frozen").
Blocks == Trace[1].blocks

-----------------------------------------------------------------------------
(* Matching the lines.                                                     *)

VARIABLES
    l,     \* the number of trace lines matched; the next one is Trace[l + 1]
    plan   \* the decision the last matched line made: what the next step may route

tvars == <<vars, actions, l, plan>>
TraceView == <<vars, l>>   \* plan is a function of the lines matched

\* The spec's variables as a record, in the trace's field names.
State == [clock |-> clock, activeLevel |-> activeLevel, quiet |-> quiet, phase |-> phase,
          seenHigh |-> seenHigh, lows |-> lows, awakenings |-> awakenings]

SetState(st) == /\ clock' = st.clock
                /\ activeLevel' = st.activeLevel
                /\ phase' = st.phase
                /\ seenHigh' = st.seenHigh
                /\ lows' = st.lows
                /\ awakenings' = st.awakenings
                /\ quiet' = st.quiet
                \* not in the state a record keeps; ComputedIsNotDormant fixes it
                /\ computed' = Hier!Computed(st.phase)

Max(S) == CHOOSE m \in S : \A n \in S : n <= m
Min(a, b) == IF a <= b THEN a ELSE b

\* The decision a line records.
Recorded(line) == [units |-> line.units, budgetAction |-> line.budgetAction,
                   quota |-> line.quota, warmup |-> line.warmup]

\* The decision before the first step: from the initial state, every need equal.
InitialPlan == DecisionFor([g \in Groups |-> IF Level[g] = 0 THEN "ACTIVE" ELSE "DORMANT"],
                           0, [g \in Groups |-> 1])

\* What the step about to be taken may route to each group: none to a frozen
\* group, at most the batch, the whole batch in shadow mode (routing.applied_quota).
Routed == [g \in Groups |-> IF ~Enforced THEN Batch
                             ELSE IF phase[g] \in Gov(g)!Frozen THEN 0
                             ELSE Min(plan.quota[g], Batch)]

\* The decision after the step s under the needs nd.
After(s, nd) == DecisionFor([g \in Groups |-> s.groups[g].phase], s.clock, nd)

AsSet(seq) == {seq[i] : i \in DOMAIN seq}

\* Every block names a group of the run, and no block is listed twice.
BlocksWellFormed == /\ \A i \in DOMAIN Blocks : Blocks[i].group \in Groups
                    /\ Cardinality({Blocks[i].name : i \in DOMAIN Blocks}) = Len(Blocks)

\* The blocks the next step does not run when the groups c are computed: those
\* of the other groups (none in shadow mode, which runs every block).
BypassedBlocks(c) ==
    IF ~Enforced THEN {}
    ELSE {Blocks[i].name : i \in {i \in DOMAIN Blocks : Blocks[i].group \notin c}}

\* A line's bypassed blocks, recorded exactly when the run bypasses, are those
\* of the groups c does not hold, each listed once.
BypassedMatches(line, c) ==
    IF Dormant = "bypass"
    THEN /\ "bypassed" \in DOMAIN line
         /\ AsSet(line.bypassed) = BypassedBlocks(c)
         /\ Len(line.bypassed) = Cardinality(AsSet(line.bypassed))
    ELSE "bypassed" \notin DOMAIN line

\* A step records a growth exactly when it Grows (and the run applies it).
GrowthMatches(line, s) == line.grows = (Enforced /\ Hier!Grows(activeLevel, s.level))

\* The step number line i must carry: one past the step of the line before
\* it, 0 after Init, fromStep after a Rewind.
StepDue(i) == LET before == Trace[i - 1] IN
              CASE before.event = "Init" -> 0
                [] before.event = "GovernanceStep" -> before.step + 1
                [] before.event = "Rewind" -> before.fromStep

\* The line a Rewind at line i returns to: the last earlier line after which
\* the run had taken steps 0 .. fromStep - 1 (Init for fromStep 0); 0 if none.
RewindTarget(i) ==
    LET from == Trace[i].fromStep
        reached == {j \in 1..(i - 1) :
                      IF from = 0 THEN Trace[j].event = "Init"
                      ELSE Trace[j].event = "GovernanceStep" /\ Trace[j].step = from - 1}
    IN IF reached = {} THEN 0 ELSE Max(reached)

\* The first line: the spec's initial state, which Init already fixed.
InitLine == /\ l = 0
            /\ l < Len(Trace)
            /\ Trace[1].event = "Init"
            /\ Trace[1].state = State
            /\ BlocksWellFormed
            /\ UNCHANGED <<vars, actions, plan>>
            /\ l' = 1

\* A governance step under the recorded observation, routing what the last
\* decision allowed, reaching the recorded state with the recorded labels and
\* making the recorded decision.
StepLine == LET line == Trace[l + 1]
                s == Step(line.high, line.wake) IN
            /\ 0 < l /\ l < Len(Trace)
            /\ line.event = "GovernanceStep"
            /\ line.step = StepDue(l + 1)
            /\ line.routed = Routed
            /\ Apply(s) /\ actions' = s.actions
            /\ State' = line.state
            /\ actions' = line.actions
            /\ Recorded(line) = After(s, line.need)
            /\ BypassedMatches(line, s.computed)
            /\ GrowthMatches(line, s)
            /\ plan' = Recorded(line)
            /\ l' = l + 1

\* A resume: back to a state the trace reached, at the recorded step.
RewindLine == LET line == Trace[l + 1]
                  target == RewindTarget(l + 1) IN
              /\ 0 < l /\ l < Len(Trace)
              /\ line.event = "Rewind"
              /\ target # 0
              /\ line.state = Trace[target].state
              /\ SetState(line.state)
              /\ actions' = << >>
              /\ plan' = IF target = 1 THEN InitialPlan ELSE Recorded(Trace[target])
              /\ l' = l + 1

TraceInit == LabelledInit /\ l = 0 /\ plan = InitialPlan

TraceNext == InitLine \/ StepLine \/ RewindLine

TraceSpec == TraceInit /\ [][TraceNext]_tvars

-----------------------------------------------------------------------------
(* What TLC checks.                                                        *)

\* Every line is matched in turn: violated in the state after the last line
\* that matched, so the first line that does not match is Trace[l + 1].
TraceMatched == l < Len(Trace) => ENABLED TraceNext

\* Every matched GovernanceStep line is a step of GovernedTrainingLabelled's
\* own next-state relation, which offers each group only the inputs its
\* phase reads (ConvergenceGovernor's ReadsOnlyItsInputs is why the recorded,
\* unmasked observation reaches the same state).
StepsAreSpecSteps ==
    [][0 < l /\ l < Len(Trace) /\ Trace[l + 1].event = "GovernanceStep" => LabelledNext]_tvars

-----------------------------------------------------------------------------
(* The diagnosis a counterexample prints (ALIAS): the variables, the       *)
(* cursor and what the spec makes of the next line in this state.          *)

Expected(i) ==
    LET line == Trace[i] IN
    CASE i = 1 ->
            [event |-> "Init", state |-> State, actions |-> << >>,
             blocksWellFormed |-> BlocksWellFormed]
      [] line.event = "GovernanceStep" ->
            LET s == Step(line.high, line.wake) IN
            [event |-> "GovernanceStep", step |-> StepDue(i),
             routed |-> Routed, decision |-> After(s, line.need),
             recordsBypassed |-> Dormant = "bypass",
             bypassed |-> BypassedBlocks(s.computed),
             grows |-> Enforced /\ Hier!Grows(activeLevel, s.level),
             state |-> [clock |-> s.clock, activeLevel |-> s.level, quiet |-> s.quiet,
                        phase |-> [g \in Groups |-> s.groups[g].phase],
                        seenHigh |-> [g \in Groups |-> s.groups[g].seenHigh],
                        lows |-> [g \in Groups |-> s.groups[g].lows],
                        awakenings |-> [g \in Groups |-> s.groups[g].awakenings]],
             actions |-> s.actions]
      [] line.event = "Rewind" ->
            LET target == RewindTarget(i) IN
            [event |-> "Rewind", target |-> target,
             state |-> IF target = 0 THEN << >> ELSE Trace[target].state]
      [] OTHER ->
            [event |-> "unknown"]

TraceAlias == [clock |-> clock, activeLevel |-> activeLevel, quiet |-> quiet, phase |-> phase,
               seenHigh |-> seenHigh, lows |-> lows, awakenings |-> awakenings,
               computed |-> computed, actions |-> actions, l |-> l, plan |-> plan,
               expected |-> IF l < Len(Trace) THEN Expected(l + 1) ELSE << >>]

=============================================================================
