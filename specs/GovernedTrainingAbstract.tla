---------------------- MODULE GovernedTrainingAbstract ----------------------
(***************************************************************************)
(* GovernedTraining seen coarsely enough to check a shipped config in     *)
(* seconds: the twin of part 2 of governance/abstraction.py.              *)
(*                                                                         *)
(* A group is seen by its phase only: seenHigh, lows and awakenings stay   *)
(* at fixed values, and a group of phase p moves to any phase the          *)
(* governor's Observe takes some typed state of phase p to (part 1, the    *)
(* governor's own counters, is ConvergenceGovernor's model for the same    *)
(* Patience and MaxAwakenings).  The clock and the quiet count are kept as *)
(* the lowest value of the interval between the thresholds the rules      *)
(* compare them with; both only grow by one or reset, so a step taken from *)
(* either end of an interval shows every outcome of a step from inside.    *)
(* The rest of the step is GovernedTraining's own: SettledBelow and        *)
(* UpperActive (which read only phases), NextLevel, Woken, Refrozen,       *)
(* Activated, Quiet, NextComputed; its invariants are checked unchanged.   *)
(*                                                                         *)
(* MCGovernedTrainingRefines.tla has TLC check that GovernedTraining       *)
(* refines ASpec under that abstraction, so an invariant of the            *)
(* abstraction's variables that holds here holds there; with its broken    *)
(* variant LowEndOnly_Ends swapped in for Ends, the refinement fails.      *)
(***************************************************************************)
EXTENDS GovernedTraining

Min(a, b) == IF a <= b THEN a ELSE b

ClockPoints == {0, Warmup, Horizon} \cup {Hier!Deadline(k) : k \in 0..MaxLevel}
QuietPoints == {0, Min(1, FinishWindow), FinishWindow}

\* The lowest value of v's interval, and the two ends of the interval starting at r.
Rep(points, v) == CHOOSE p \in points : p <= v /\ \A q \in points : q <= v => q <= p
Ends(points, r) ==
    LET above == {p \in points : p > r}
    IN IF above = {} THEN {r}
       ELSE {r, (CHOOSE p \in above : \A q \in above : p <= q) - 1}
ClockRep(c) == Rep(ClockPoints, c)
QuietRep(q) == Rep(QuietPoints, q)

AllSeen == [g \in Groups |-> TRUE]
Zeros == [g \in Groups |-> 0]

\* Every typed state of one governor (reachable or not) with phase p.
LocalStates(p) ==
    {Gov(1)!GroupState(p, s, l, a) : s \in BOOLEAN, l \in 0..(Patience - 1),
                                     a \in 0..MaxAwakenings}

\* The inputs a phase reads (as Signals and Wakes offer them).
Inputs(p) == {<<FALSE, FALSE>>}
             \cup (IF Gov(1)!ReadsSignal(p) THEN {<<TRUE, FALSE>>} ELSE {})
             \cup (IF Gov(1)!ReadsWake(p) THEN {<<FALSE, TRUE>>} ELSE {})

\* What one step can do to a group of phase p: the phase the governor's move takes
\* some typed state of phase p to, and whether the group's wake probe fired; settled
\* and counting are ConvergeAfterLower's and ConvergeAfterUpper's guards
\* (SettledBelow, UpperActive, which read only phases): where one does not hold, a
\* Converge is a wait, and the group stays COOLING.
Options(p, settled, counting) ==
    {[to |-> Governed(1, s, i[1], i[2], settled, counting).next.phase, wake |-> i[2]] :
        s \in LocalStates(p), i \in Inputs(p)}
OptionTable == [p \in Gov(1)!Phases, settled \in BOOLEAN, counting \in BOOLEAN |->
                    Options(p, settled, counting)]

N == Cardinality(Groups)

\* Every group's option for one step: the product over groups 1..N.
RECURSIVE Choices(_)
Choices(n) == IF n = 0 THEN {<<>>}
              ELSE {Append(c, o) : c \in Choices(n - 1),
                                   o \in OptionTable[phase[n], SettledBelow(n),
                                                     UpperActive(n)]}

\* One abstract step from the clock value c and quiet count q (ends of their intervals).
AStep(choice, c, q) ==
    LET moved == [g \in Groups |-> choice[g].to]
        wake == [g \in Groups |-> choice[g].wake]
        t == Hier!Tick(c)
        lvl == Hier!NextLevel(moved, activeLevel, t)
        woken == IF lvl = activeLevel THEN {} ELSE Hier!Woken(moved, lvl)
        refrozen == IF lvl = activeLevel THEN {} ELSE Hier!Refrozen(moved, lvl)
        ph == [g \in Groups |->
                  CASE g \in woken ->
                           Gov(g)!Activated(Gov(g)!GroupState(moved[g], TRUE, 0, 0)).phase
                    [] g \in refrozen -> "DORMANT"
                    [] OTHER -> moved[g]]
    IN /\ clock' = ClockRep(t)
       /\ activeLevel' = lvl
       /\ phase' = ph
       /\ quiet' = QuietRep(Quiet(q, ph, lvl, wake))
       /\ computed' = Hier!NextComputed(computed, ph, activeLevel, lvl)
       /\ UNCHANGED <<seenHigh, lows, awakenings>>

AInit == /\ clock = 0
         /\ activeLevel = 0
         /\ phase = [g \in Groups |-> IF Level[g] = 0 THEN "ACTIVE" ELSE "DORMANT"]
         /\ seenHigh = AllSeen
         /\ lows = Zeros
         /\ awakenings = Zeros
         /\ quiet = 0
         /\ computed = Hier!InitComputed

ANext == \E choice \in Choices(N), c \in Ends(ClockPoints, clock),
            q \in Ends(QuietPoints, quiet) : AStep(choice, c, q)

ASpec == AInit /\ [][ANext]_vars

\* TypeOK of the abstract variables; the decisions are checked by the invariants of
\* GovernedTraining that read them (BudgetConserved, ...), for every vector of Needs.
ATypeOK == /\ clock \in ClockPoints
           /\ activeLevel \in 0..MaxLevel
           /\ quiet \in QuietPoints
           /\ phase \in [Groups -> Gov(1)!Phases]
           /\ computed \in SUBSET Groups

\* The groups of one level counted by phase, not named: every rule reads a level's
\* groups as a set, so states equal in this view have the same futures up to which
\* group is which (TLC explores one of them: VIEW CountedView).  `computed` is
\* left out: ComputedIsNotDormant makes it a function of the phases.
CountedView ==
    <<clock, activeLevel, quiet,
      [k \in 0..MaxLevel |->
          [p \in Gov(1)!Phases |-> Cardinality({g \in Groups : Level[g] = k /\ phase[g] = p})]]>>

=============================================================================
