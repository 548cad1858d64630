------------------------- MODULE ConvergenceGovernor -------------------------
(***************************************************************************)
(* One parameter group's convergence governor; Python: governance/         *)
(* convergence.py, same state, action and invariant names.                 *)
(*                                                                         *)
(*   DORMANT --Activate--> ACTIVE --BeginCooling--> COOLING --Converge-->  *)
(*   CONVERGED --Awaken--> AWAKENED; COOLING --Reheat--> ACTIVE;           *)
(*   Learn marks the first high signal since (re)activation; Cool counts   *)
(*   a low signal while COOLING.                                           *)
(*                                                                         *)
(* The governor is written once, as the function Observe(g, high, wake)    *)
(* of a group record g and one abstract observation (signal high or low,   *)
(* wake probe fired or not).  The actions of this module are the steps of  *)
(* that function that carry a given name, and GovernedTraining.tla applies *)
(* the same function to every group at once, so the single governor and   *)
(* the composition cannot drift apart.                                     *)
(*                                                                         *)
(* Its models: MCConvergenceGovernor.tla with MCConvergenceGovernor*.cfg.  *)
(* The broken variants, which show that each invariant can fail, are       *)
(* operators of MCConvergenceGovernor.tla that a model's .cfg swaps in.    *)
(***************************************************************************)
EXTENDS Naturals

CONSTANTS
    Patience,       \* governor.patience: lows observed while COOLING before CONVERGED
    MaxAwakenings   \* governor.max_awakenings

ASSUME /\ Patience \in Nat \ {0}
       /\ MaxAwakenings \in Nat

VARIABLES phase, seenHigh, lows, awakenings
vars == <<phase, seenHigh, lows, awakenings>>

Phases == {"DORMANT", "ACTIVE", "COOLING", "CONVERGED", "AWAKENED"}
Frozen == {"DORMANT", "CONVERGED"}      \* no budget, no gradient
Learning == {"ACTIVE", "AWAKENED"}      \* a high signal is Learn, a low one may BeginCooling

GroupState(ph, high, l, a) == [phase |-> ph, seenHigh |-> high, lows |-> l, awakenings |-> a]
GroupStates == [phase : Phases, seenHigh : BOOLEAN, lows : Nat, awakenings : Nat]

-----------------------------------------------------------------------------
(* The guards, named as in convergence.py.                                 *)

\* NoCoolingFromCold: a group that never learned since activation cannot cool.
MayBeginCooling(g) == g.seenHigh

\* COOLING converges on the Patience-th consecutive low observed while cooling.
PatienceReached(l) == l >= Patience

\* AwakeningsBounded: at most MaxAwakenings wakes, so nothing oscillates forever.
MayAwaken(g) == g.awakenings < MaxAwakenings

\* Activate: a DORMANT group whose level became active starts learning from cold.
Activated(g) == GroupState("ACTIVE", FALSE, 0, g.awakenings)

\* Cool counts the low it observed; Converge resets the count (lows counts
\* only while COOLING).
CountLow(g) == g.lows + 1
ConvergedLows(l) == 0

(* One step of one governor: the next group record and the name of the     *)
(* action taken, "None" when the observation changes nothing.              *)
Result(g, name) == [next |-> g, action |-> name]

Observe(g, high, wake) ==
    CASE g.phase \in Learning ->
            IF high
            THEN IF g.seenHigh THEN Result(g, "None")
                 ELSE Result([g EXCEPT !.seenHigh = TRUE], "Learn")
            ELSE IF MayBeginCooling(g)
                 THEN Result([g EXCEPT !.phase = "COOLING", !.lows = 0], "BeginCooling")
                 ELSE Result(g, "None")
      [] g.phase = "COOLING" ->
            IF high
            THEN Result([g EXCEPT !.phase = "ACTIVE", !.lows = 0], "Reheat")
            ELSE LET l == CountLow(g) IN
                 IF PatienceReached(l)
                 THEN Result([g EXCEPT !.phase = "CONVERGED", !.lows = ConvergedLows(l)],
                             "Converge")
                 ELSE Result([g EXCEPT !.lows = l], "Cool")
      [] g.phase = "CONVERGED" ->
            IF wake /\ MayAwaken(g)
            THEN Result(GroupState("AWAKENED", FALSE, 0, g.awakenings + 1), "Awaken")
            ELSE Result(g, "None")
      [] g.phase = "DORMANT" ->
            Result(g, "None")   \* no gradient, nothing observed; only the hierarchy wakes it

(* The inputs the governor reads: the signal while ACTIVE, COOLING or      *)
(* AWAKENED, the wake probe while CONVERGED, nothing while DORMANT.  The   *)
(* invariant ReadsOnlyItsInputs checks that an input it does not read      *)
(* cannot change its step, so GovernedTraining may offer each group only   *)
(* the observations its phase tells apart.                                 *)
ReadsSignal(p) == p \in {"ACTIVE", "COOLING", "AWAKENED"}
ReadsWake(p) == p = "CONVERGED"

-----------------------------------------------------------------------------
(* The single governor as a state machine.  The environment chooses the    *)
(* observation; the hierarchy's Activate may happen whenever it is DORMANT. *)

Current == GroupState(phase, seenHigh, lows, awakenings)

Become(g) == /\ phase' = g.phase
             /\ seenHigh' = g.seenHigh
             /\ lows' = g.lows
             /\ awakenings' = g.awakenings

(* Each action is the step of Observe that carries its name, under some  *)
(* observation.  (Written out per action, not through a shared operator,   *)
(* so that TLC labels the transitions Learn, Cool, ... in its state graph.) *)
Activate == phase = "DORMANT" /\ Become(Activated(Current))

Learn == \E high, wake \in BOOLEAN :
            LET r == Observe(Current, high, wake) IN r.action = "Learn" /\ Become(r.next)
BeginCooling == \E high, wake \in BOOLEAN :
            LET r == Observe(Current, high, wake) IN r.action = "BeginCooling" /\ Become(r.next)
Cool == \E high, wake \in BOOLEAN :
            LET r == Observe(Current, high, wake) IN r.action = "Cool" /\ Become(r.next)
Converge == \E high, wake \in BOOLEAN :
            LET r == Observe(Current, high, wake) IN r.action = "Converge" /\ Become(r.next)
Reheat == \E high, wake \in BOOLEAN :
            LET r == Observe(Current, high, wake) IN r.action = "Reheat" /\ Become(r.next)
Awaken == \E high, wake \in BOOLEAN :
            LET r == Observe(Current, high, wake) IN r.action = "Awaken" /\ Become(r.next)

Init == /\ phase = "DORMANT"
        /\ seenHigh = FALSE
        /\ lows = 0
        /\ awakenings = 0
Next == Activate \/ Learn \/ BeginCooling \/ Cool \/ Converge \/ Reheat \/ Awaken

Spec == Init /\ [][Next]_vars

(* The governor keeps receiving observations: a step a low signal would    *)
(* take is eventually taken, and a DORMANT group is eventually activated.  *)
FairSpec == /\ Spec
            /\ WF_vars(Activate)
            /\ WF_vars(BeginCooling)
            /\ WF_vars(Cool)
            /\ WF_vars(Converge)

-----------------------------------------------------------------------------
(* Invariants, as in governance/invariants.py.                             *)

TypeOK == /\ phase \in Phases
          /\ seenHigh \in BOOLEAN
          /\ lows \in 0..(Patience - 1)
          /\ lows # 0 => phase = "COOLING"
          /\ awakenings \in Nat

NoCoolingFromCold == phase \in {"COOLING", "CONVERGED"} => seenHigh

AwakeningsBounded == awakenings <= MaxAwakenings

ReadsOnlyItsInputs ==
    \A high, wake \in BOOLEAN :
        Observe(Current, high, wake)
            = Observe(Current, high /\ ReadsSignal(phase), wake /\ ReadsWake(phase))

(* Liveness.  A group whose signal eventually stays low (no more Learn or  *)
(* Reheat) ends up CONVERGED, or cold: learning but never high since its   *)
(* last (re)activation, which NoCoolingFromCold forbids to converge.  It   *)
(* can neither cool forever nor stay warm forever.                         *)
HighSignal == Learn \/ Reheat

LowSignalConverges ==
    <>[][~HighSignal]_vars
        => <>[](phase = "CONVERGED" \/ (phase \in Learning /\ ~seenHigh))

=============================================================================
