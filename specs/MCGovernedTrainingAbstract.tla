------------------ MODULE MCGovernedTrainingAbstract ------------------
(* Generated from configs/small.yaml by govtrain.formal.compare;
   do not edit: `govtrain specs gen-model` rewrites it. *)
EXTENDS GovernedTrainingAbstract
MC_GroupNames == <<"embed", "body", "head">>
MC_Level == <<0, 0, 1>>
MC_Patience == 2
MC_MaxAwakenings == 1
MC_TotalSteps == 8
MC_EmergencyFraction == <<3, 4>>
MC_Dormant == "frozen"
MC_InLevelOrder == FALSE
MC_AfterUpper == FALSE
MC_Warmup == 1
MC_Batch == 4
MC_FinishWindow == 2
MC_Master == 6
MC_Floor == 1
MC_Ceiling == 4
MC_Multiplier == [ACTIVE |-> 2, COOLING |-> 1, AWAKENED |-> 2]
MC_Needs == {1, 3}
=============================================================================
