----------------------- MODULE MCGovernedTrainingDeep -----------------------
(* A deeper composition than configs/small.yaml: four groups over three    *)
(* levels (two at level 0), patience 2, one awakening, 12 steps with the   *)
(* emergency at three quarters of the run (deadlines 5 and 9), two warmup  *)
(* steps, and a budget whose floors do not fit once every group is awake   *)
(* (master 5, floor 2), so Ration happens too; the run ends after one step *)
(* with nothing left to train.  Dormant levels are bypassed, so the model  *)
(* grows twice (no other rule reads `computed`: the other invariants are   *)
(* checked exactly as under "frozen", whose computed set is every group).  *)
EXTENDS GovernedTraining
Deep_GroupNames == <<"embed", "body", "neck", "head">>
Deep_Level == <<0, 0, 1, 2>>
Deep_Patience == 2
Deep_MaxAwakenings == 1
Deep_TotalSteps == 12
Deep_EmergencyFraction == <<3, 4>>
Deep_Dormant == "bypass"
Deep_InLevelOrder == FALSE
Deep_AfterUpper == FALSE
Deep_Warmup == 2
Deep_Batch == 4
Deep_FinishWindow == 1
Deep_Master == 5
Deep_Floor == 2
Deep_Ceiling == 4
Deep_Multiplier == [ACTIVE |-> 2, COOLING |-> 1, AWAKENED |-> 2]
Deep_Needs == {1, 3}
=============================================================================
