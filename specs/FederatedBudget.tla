--------------------------- MODULE FederatedBudget ---------------------------
(***************************************************************************)
(* The federated budget allocator; Python: governance/budget.py.           *)
(*                                                                         *)
(* A master budget of integer units is split among the eligible (non-      *)
(* frozen) groups of a request.                                            *)
(*  - Allocate (the floors fit): every eligible group gets Floor, then the *)
(*    rest is handed out one unit at a time (AwardUnit) by the D'Hondt     *)
(*    rule: the unit goes to the open group (below Ceiling) with the       *)
(*    largest weight / (units won + 1); ties to fewer units won, then the  *)
(*    lower index.  It stops when the budget is spent or every eligible    *)
(*    group is at its ceiling.                                             *)
(*  - Ration (the floors do not fit): the master is split equally and the  *)
(*    remainder goes one unit each to the heaviest groups (ties: lower     *)
(*    index).                                                              *)
(* Weights are naturals (need x phase multiplier) compared by cross-       *)
(* multiplication, i.e. as exact fractions, as budget.py does with         *)
(* fractions.Fraction.  Allocation(w, e) is the same decision as one       *)
(* function; GovernedTraining.tla uses it, and HandoutIsDHondt checks that *)
(* the unit-by-unit process here ends in exactly that decision.            *)
(*                                                                         *)
(* Its models: MCFederatedBudget.tla with MCFederatedBudget*.cfg; the      *)
(* broken variants are operators of MCFederatedBudget.tla that a model's   *)
(* .cfg swaps in.                                                          *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets

CONSTANTS
    Groups,    \* group indices 1..N (the index breaks ties)
    Master,    \* budget.master: units per step
    Floor,     \* budget.floor
    Ceiling,   \* budget.ceiling
    Weights    \* the weights a request may carry (the environment's choices)

ASSUME /\ Groups \subseteq Nat
       /\ Master \in Nat \ {0} /\ Floor \in Nat /\ Ceiling \in Nat \ {0}
       /\ Floor <= Ceiling
       /\ Weights \subseteq Nat

VARIABLES
    eligible,  \* the request: the non-frozen groups
    weight,    \* the request: weight[g] = need x multiplier (0 for frozen groups)
    units,     \* the decision so far
    stage      \* "request", "handout" (Allocate running) or "rationed"
bvars == <<eligible, weight, units, stage>>

RECURSIVE SumOver(_, _)
SumOver(f, S) == IF S = {} THEN 0
                 ELSE LET x == CHOOSE x \in S : TRUE IN f[x] + SumOver(f, S \ {x})
Total(u) == SumOver(u, DOMAIN u)

Zero == [g \in Groups |-> 0]

\* The groups that get a floor: the eligible ones (NoBudgetForFrozen).
Floored(e) == e

\* Floors fit in the master budget.
Feasible(e) == Cardinality(Floored(e)) * Floor <= Master

Floors(e) == [g \in Groups |-> IF g \in Floored(e) THEN Floor ELSE 0]

\* Open groups may still win a unit.
Open(u, e) == {g \in e : u[g] < Ceiling}

\* g takes the next unit before h: larger weight / (won + 1), then fewer
\* won, then the lower index (won = units beyond the floor): D'Hondt's
\* divisors 1, 2, 3, ...
Divisor(won) == won + 1
Before(g, h, u, w) ==
    LET dg == Divisor(u[g] - Floor)
        dh == Divisor(u[h] - Floor)
    IN \/ w[g] * dh > w[h] * dg
       \/ w[g] * dh = w[h] * dg /\ dg < dh
       \/ w[g] * dh = w[h] * dg /\ dg = dh /\ g < h

Best(u, w, S) == CHOOSE g \in S : \A h \in S \ {g} : Before(g, h, u, w)

\* Every unit that can be handed out has been.
HandoutDone(u, e) == Total(u) >= Master \/ Open(u, e) = {}

RECURSIVE Handout(_, _, _)
Handout(u, w, e) ==
    IF HandoutDone(u, e) THEN u
    ELSE LET g == Best(u, w, Open(u, e)) IN Handout([u EXCEPT ![g] = @ + 1], w, e)

\* Allocate starts from the floors; the hand-out does the rest.
StartAllocate(w, e) == Floors(e)

\* Ration: equal shares, the remainder one unit each to the heaviest.
Rank(g, w, e) == Cardinality({h \in e : w[h] > w[g] \/ (w[h] = w[g] /\ h < g)})
Rationed(w, e) ==
    LET n == Cardinality(e) IN
    [g \in Groups |-> IF g \in e
                      THEN Master \div n + (IF Rank(g, w, e) < Master % n THEN 1 ELSE 0)
                      ELSE 0]

\* Ration exactly when the floors do not fit.
UseRation(e) == ~Feasible(e)

\* The whole decision for one request: [units |-> ..., action |-> "Allocate" or "Ration"].
Allocation(w, e) ==
    CASE e = {} -> [units |-> Zero, action |-> "Allocate"]
      [] UseRation(e) -> [units |-> Rationed(w, e), action |-> "Ration"]
      [] OTHER -> [units |-> Handout(StartAllocate(w, e), w, e), action |-> "Allocate"]

\* The decision for the current request.
Decision == Allocation(weight, eligible)

-----------------------------------------------------------------------------
(* The allocator as a state machine: the initial state is any request    *)
(* (the budget keeps no memory between steps, so one request per behaviour *)
(* covers every step); Allocate then AwardUnit, or Ration, decide it.  A   *)
(* decided request is a final state.                                       *)

Requests == {r \in [eligible : SUBSET Groups, weight : [Groups -> Weights]] :
                \A g \in Groups \ r.eligible : r.weight[g] = 0}

Init == \E r \in Requests : eligible = r.eligible /\ weight = r.weight
                            /\ units = Zero /\ stage = "request"

Decided == \/ stage = "rationed"
           \/ stage = "handout" /\ HandoutDone(units, eligible)

Action == IF stage = "rationed" THEN "Ration" ELSE "Allocate"

Allocate == /\ stage = "request"
            /\ ~UseRation(eligible)
            /\ units' = StartAllocate(weight, eligible)
            /\ stage' = "handout"
            /\ UNCHANGED <<eligible, weight>>

AwardUnit == /\ stage = "handout"
             /\ ~HandoutDone(units, eligible)
             /\ units' = [units EXCEPT ![Best(units, weight, Open(units, eligible))] = @ + 1]
             /\ UNCHANGED <<eligible, weight, stage>>

Ration == /\ stage = "request"
          /\ UseRation(eligible)
          /\ units' = Rationed(weight, eligible)
          /\ stage' = "rationed"
          /\ UNCHANGED <<eligible, weight>>

Next == Allocate \/ AwardUnit \/ Ration

Spec == Init /\ [][Next]_bvars
FairSpec == Spec /\ WF_bvars(Allocate) /\ WF_bvars(AwardUnit) /\ WF_bvars(Ration)

-----------------------------------------------------------------------------
(* Invariants, as in governance/invariants.py, over a decision u for the   *)
(* eligible set e; GovernedTraining.tla applies the same predicates.       *)

ConservedFor(u) == Total(u) <= Master

WithinBoundsFor(u, e, action) ==
    \A g \in e : u[g] <= Ceiling /\ (action = "Allocate" => u[g] >= Floor)

WorkConservingFor(u, e) == Total(u) < Master => \A g \in e : u[g] >= Ceiling

NoBudgetForFrozenFor(u, e) == \A g \in Groups \ e : u[g] = 0

TypeOK == /\ eligible \subseteq Groups
          /\ weight \in [Groups -> Weights]
          /\ units \in [Groups -> Nat]
          /\ stage \in {"request", "handout", "rationed"}

\* Never over the master budget, not even halfway through the hand-out.
BudgetConserved == ConservedFor(units)
BudgetWithinBounds == Decided => WithinBoundsFor(units, eligible, Action)
BudgetWorkConserving == Decided => WorkConservingFor(units, eligible)
NoBudgetForFrozen == NoBudgetForFrozenFor(units, eligible)

\* The unit-by-unit hand-out ends in the decision GovernedTraining uses.
HandoutIsDHondt == Decided => units = Decision.units /\ Action = Decision.action

\* What makes a hand-out D'Hondt's, written without Before: no group that
\* could still take a unit has a better claim to it (weight / (won + 1)) than
\* any group had to the last unit it won (weight / won).  Ties may go either
\* way here; the tie-break is the comparison with budget.py's.
HandoutIsOptimal ==
    (stage = "handout" /\ Decided) =>
        \A g, h \in eligible :
            (units[g] < Ceiling /\ units[h] > Floor) =>
                weight[g] * (units[h] - Floor) <= weight[h] * (units[g] - Floor + 1)

\* Every request is eventually decided: the hand-out terminates.
RequestDecided == (stage = "request") ~> Decided

=============================================================================
