---------------------------- MODULE MCAuditChain ----------------------------
(***************************************************************************)
(* The models of AuditChain (MCAuditChain*.cfg) and the broken verifiers,  *)
(* each an operator <Variant>_<Operator> that a model's .cfg swaps in      *)
(* (Linked <- NoPrevCheck_Linked).                                         *)
(***************************************************************************)
EXTENDS AuditChain

\* The prev links are not verified: an edited record under an intact last
\* record passes, which refutes ChainIntact.
NoPrevCheck_Linked(s, i) == s[i].seq = i

\* Only the chain is verified: a rechained log passes, which refutes
\* ChainIntact.
NoCheckpoint_CheckpointMatches(s) == TRUE

\* A closed log may outgrow its final checkpoint: a forged record appended
\* after Close passes, which refutes ChainIntact.
NoSizeCheck_SizeMatches(s) == TRUE

\* The checkpoint is compared with the whole log, not the prefix it signs: an
\* honest open run with records after its last checkpoint is rejected, which
\* refutes NoFalseAlarm.
RootOfWholeLog_Checkpointed(s) == s
=============================================================================
