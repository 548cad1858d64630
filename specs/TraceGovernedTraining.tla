------------------------ MODULE TraceGovernedTraining ------------------------
(***************************************************************************)
(* Trace validation: is a recorded run a behaviour of                      *)
(* GovernedTrainingLabelled?  Python: pipeline/trace.py writes the trace,  *)
(* tools/tlc.py (validate_trace) runs this module on it.                   *)
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
(* pipeline/conform.py rewinds.  Past a Rewind the run is a behaviour of   *)
(* the spec again, from a state it reached before.                         *)
(*                                                                         *)
(* The spec's constants come from the trace's Init line.  The budget and   *)
(* router constants are not in the trace and are not used here: this       *)
(* module checks states, transitions and labels; the decisions (budget     *)
(* units, quotas, routing) are checked by the Python replay.  A dropped    *)
(* line breaks the step numbering; dropped lines at the end of a trace     *)
(* leave a prefix, which is still a behaviour (the audit log's signed      *)
(* checkpoints detect truncation, not this module).                        *)
(*                                                                         *)
(* The model (generated per run by tools/tlc.py) sets TraceFile, maps the  *)
(* constants to the Trace* definitions below and checks TraceSpec with     *)
(* VIEW TraceView, ALIAS TraceAlias, no deadlock checking, the invariant   *)
(* TraceMatched (first: a violation leaves the cursor on the last line     *)
(* that matched, and the alias shows what the spec makes of the next one), *)
(* GovernedTraining's state invariants and the property                    *)
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
TraceWarmup == TraceConstants.Warmup
TraceBatch == TraceConstants.Batch
TraceFinishWindow == TraceConstants.FinishWindow

\* Not in the trace and never evaluated by this module's checks (the budget
\* and the router decide from the state; the Python replay checks their
\* decisions): values that only satisfy the components' assumptions.
UncheckedMaster == 1
UncheckedFloor == 0
UncheckedCeiling == 1
UncheckedMultiplier == [ACTIVE |-> 1, COOLING |-> 1, AWAKENED |-> 1]
UncheckedNeeds == {1}

-----------------------------------------------------------------------------
(* Matching the lines.                                                     *)

VARIABLE l   \* the number of trace lines matched; the next one is Trace[l + 1]

tvars == <<vars, actions, l>>
TraceView == <<vars, l>>

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

Max(S) == CHOOSE m \in S : \A n \in S : n <= m

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
            /\ UNCHANGED <<vars, actions>>
            /\ l' = 1

\* A governance step under the recorded observation reaching the recorded
\* state with the recorded labels.
StepLine == LET line == Trace[l + 1] IN
            /\ 0 < l /\ l < Len(Trace)
            /\ line.event = "GovernanceStep"
            /\ line.step = StepDue(l + 1)
            /\ LET s == Step(line.high, line.wake) IN Apply(s) /\ actions' = s.actions
            /\ State' = line.state
            /\ actions' = line.actions
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
              /\ l' = l + 1

TraceInit == LabelledInit /\ l = 0

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
            [event |-> "Init", state |-> State, actions |-> << >>]
      [] line.event = "GovernanceStep" ->
            LET s == Step(line.high, line.wake) IN
            [event |-> "GovernanceStep", step |-> StepDue(i),
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
               actions |-> actions, l |-> l,
               expected |-> IF l < Len(Trace) THEN Expected(l + 1) ELSE << >>]

=============================================================================
