----------------------- MODULE GovernedTrainingLabelled -----------------------
(***************************************************************************)
(* GovernedTraining whose state also carries `actions`: the names of the   *)
(* actions the last governance step took, as step.py reports them and an   *)
(* audit record names them ("Learn(embed)", "ActivateLevel(1)", ...; the   *)
(* empty sequence for a step that changed no governor and no level).       *)
(*                                                                         *)
(* `actions` is a history variable: it never influences a step, so the     *)
(* behaviours projected on GovernedTraining's variables are exactly those  *)
(* of GovernedTraining.  TLC's state graph of this spec, projected, is     *)
(* what govtrain/formal/compare.py compares with the Python core's explorer,     *)
(* labels included; a recorded run is a behaviour of it (trace             *)
(* validation).                                                            *)
(***************************************************************************)
EXTENDS GovernedTraining

VARIABLE actions
lvars == <<vars, actions>>

LabelledInit == Init /\ actions = << >>

LabelledNext ==
    \E high \in Signals, wake \in Wakes :
        LET s == Step(high, wake) IN Apply(s) /\ actions' = s.actions

LabelledSpec == LabelledInit /\ [][LabelledNext]_lvars

=============================================================================
