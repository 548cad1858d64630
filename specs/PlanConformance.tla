--------------------------- MODULE PlanConformance ---------------------------
(***************************************************************************)
(* The Python core's decide() against the spec's decision in every state  *)
(* the explorer reaches.  govtrain/formal/compare.py writes one ND-JSON    *)
(* line per (reachable state, vector of needs): the state's phases and     *)
(* clock, the needs, and the decision decide() made; DecisionFor must make *)
(* the same one.  A model of a run config (MC_ constants, as the composed  *)
(* comparison's) sets PlanFile; TLC checks PlansAgree in its one state and *)
(* the alias names the first case that differs and what the spec decides.  *)
(***************************************************************************)
EXTENDS GovernedTraining, Json, Sequences

CONSTANT PlanFile   \* absolute path of the ND-JSON cases

Cases == ndJsonDeserialize(PlanFile)

\* One state: the composition's initial one (every variable needs a value).
\* PlansAgree reads `checked` so that TLC checks it as an invariant of that state
\* (a constant-level invariant that fails is only a config error, without the alias).
VARIABLE checked
PlanInit == Init /\ checked = TRUE
PlanSpec == PlanInit /\ [][UNCHANGED <<vars, checked>>]_<<vars, checked>>

Disagrees(i) == DecisionFor(Cases[i].phase, Cases[i].clock, Cases[i].need) # Cases[i].decision
PlansAgree == checked => \A i \in 1..Len(Cases) : ~Disagrees(i)

FirstDisagreement == LET bad == {i \in 1..Len(Cases) : Disagrees(i)} IN
                     IF bad = {} THEN 0 ELSE CHOOSE i \in bad : \A j \in bad : i <= j

PlanAlias == LET i == FirstDisagreement IN
             [checked |-> checked, case |-> i,
              spec |-> IF i = 0 THEN << >>
                       ELSE DecisionFor(Cases[i].phase, Cases[i].clock, Cases[i].need)]
=============================================================================
