------------------------------ MODULE AuditChain ------------------------------
(***************************************************************************)
(* The hash-chained audit log under attack; Python: audit/.                *)
(*                                                                         *)
(* The writer Appends records, each carrying its sequence number and the   *)
(* hash of the previous record, publishes signed Checkpoints (size and     *)
(* root) outside the log, and Closes the run with a final checkpoint.  An  *)
(* adversary who controls the log file (but not the signing key or the     *)
(* published checkpoints) edits, drops, swaps and forges records and can   *)
(* recompute the whole chain.  The verifier checks the chain and the       *)
(* latest checkpoint.                                                      *)
(*                                                                         *)
(* Hashes are ideal: Hash(r) is the record itself under a tag, so two      *)
(* records have the same hash only if they are equal (collision           *)
(* resistance); the root of a prefix is the hash of its last record, which *)
(* commits to the whole prefix through the prev links.                     *)
(*                                                                         *)
(* TamperedLogRejected: once the run is closed, every log the adversary    *)
(* can produce within the bounds that differs from what was written is     *)
(* rejected.  ChainIntact also covers open runs, where only the prefix up  *)
(* to the latest checkpoint is protected: records after it carry no        *)
(* signature yet, and a hash chain alone cannot reveal their truncation.   *)
(*                                                                         *)
(* Its models: MCAuditChain.tla with MCAuditChain*.cfg; the broken         *)
(* verifiers are operators of MCAuditChain.tla that a model's .cfg swaps   *)
(* in.                                                                     *)
(***************************************************************************)
EXTENDS Naturals

Sq == INSTANCE Sequences   \* not EXTENDed: its Append would clash with the action

CONSTANTS
    Payloads,     \* what a record may say (abstracted)
    MaxRecords,   \* how many records the writer appends at most
    MaxTampers    \* how many changes the adversary makes at most

ASSUME /\ Payloads # {}
       /\ MaxRecords \in Nat
       /\ MaxTampers \in Nat

VARIABLES
    written,     \* the records as the writer appended them
    log,         \* the log file as it is now
    checkpoint,  \* the latest signed checkpoint: [size, root]
    closed,      \* the writer closed the run with a final checkpoint
    tampers,     \* changes the adversary made so far
    verdict      \* the verifier's answer for the current log: "none", "accepted", "rejected"
avars == <<written, log, checkpoint, closed, tampers, verdict>>

Genesis == <<"genesis">>   \* a tuple, like every Hash, so TLC can compare them
Record(seq, prev, payload) == [seq |-> seq, prev |-> prev, payload |-> payload]
Hash(r) == <<"H", r>>
Prefix(s, n) == Sq!SubSeq(s, 1, n)
Root(s) == IF Sq!Len(s) = 0 THEN Genesis ELSE Hash(s[Sq!Len(s)])

\* The record that extends s by `payload`, chained correctly.
Extend(s, payload) == Record(Sq!Len(s) + 1, Root(s), payload)

-----------------------------------------------------------------------------
(* The verifier.                                                           *)

\* Record i has its sequence number and links to the record before it.
Linked(s, i) == s[i].seq = i /\ s[i].prev = Root(Prefix(s, i - 1))
ChainValid(s) == \A i \in 1..Sq!Len(s) : Linked(s, i)

\* The part of the log the latest checkpoint covers: its first size records.
Checkpointed(s) == Prefix(s, checkpoint.size)

\* A closed run's log ends at its final checkpoint.
SizeMatches(s) == closed => Sq!Len(s) = checkpoint.size

CheckpointMatches(s) ==
    /\ checkpoint.size <= Sq!Len(s)
    /\ Root(Checkpointed(s)) = checkpoint.root
    /\ SizeMatches(s)

Accepts(s) == ChainValid(s) /\ CheckpointMatches(s)

-----------------------------------------------------------------------------
(* The writer.                                                             *)

Init == /\ written = << >>
        /\ log = << >>
        /\ checkpoint = [size |-> 0, root |-> Genesis]
        /\ closed = FALSE
        /\ tampers = 0
        /\ verdict = "none"

\* The writer appends to the file as it finds it, chaining from its own head.
Append(payload) ==
    /\ ~closed
    /\ Sq!Len(written) < MaxRecords
    /\ LET r == Extend(written, payload) IN
          /\ written' = Sq!Append(written, r)
          /\ log' = Sq!Append(log, r)
    /\ verdict' = "none"
    /\ UNCHANGED <<checkpoint, closed, tampers>>

Signed == [size |-> Sq!Len(written), root |-> Root(written)]

Checkpoint ==
    /\ ~closed
    /\ checkpoint.size < Sq!Len(written)
    /\ checkpoint' = Signed
    /\ verdict' = "none"
    /\ UNCHANGED <<written, log, closed, tampers>>

Close ==
    /\ ~closed
    /\ checkpoint' = Signed
    /\ closed' = TRUE
    /\ verdict' = "none"
    /\ UNCHANGED <<written, log, tampers>>

-----------------------------------------------------------------------------
(* The adversary: each move changes the log file.                          *)

Tamper(newLog) ==
    /\ tampers < MaxTampers
    /\ newLog # log
    /\ log' = newLog
    /\ tampers' = tampers + 1
    /\ verdict' = "none"
    /\ UNCHANGED <<written, checkpoint, closed>>

Positions == 1..Sq!Len(log)

EditRecord(i, payload) == i \in Positions /\ Tamper([log EXCEPT ![i].payload = payload])

DropRecord(i) == i \in Positions
                 /\ Tamper([j \in 1..(Sq!Len(log) - 1) |-> IF j < i THEN log[j] ELSE log[j + 1]])

SwapRecords(i) == i \in Positions /\ i + 1 \in Positions
                  /\ Tamper([log EXCEPT ![i] = log[i + 1], ![i + 1] = log[i]])

ForgeRecord(payload) == Tamper(Sq!Append(log, Extend(log, payload)))

\* Recompute every sequence number and prev link, so the chain is consistent again.
RECURSIVE Rechained(_)
Rechained(s) == IF Sq!Len(s) = 0 THEN s
                ELSE LET front == Rechained(Prefix(s, Sq!Len(s) - 1)) IN
                     Sq!Append(front, Extend(front, s[Sq!Len(s)].payload))

Rechain == Tamper(Rechained(log))

-----------------------------------------------------------------------------

Verify == /\ verdict = "none"
          /\ verdict' = IF Accepts(log) THEN "accepted" ELSE "rejected"
          /\ UNCHANGED <<written, log, checkpoint, closed, tampers>>

MaxLogLength == MaxRecords + MaxTampers

Next == \/ \E p \in Payloads : Append(p)
        \/ Checkpoint
        \/ Close
        \/ \E i \in 1..MaxLogLength, p \in Payloads : EditRecord(i, p)
        \/ \E i \in 1..MaxLogLength : DropRecord(i)
        \/ \E i \in 1..MaxLogLength : SwapRecords(i)
        \/ \E p \in Payloads : ForgeRecord(p)
        \/ Rechain
        \/ Verify

Spec == Init /\ [][Next]_avars
FairSpec == Spec /\ WF_avars(Close) /\ WF_avars(Verify)

-----------------------------------------------------------------------------

TypeOK == /\ Sq!Len(written) <= MaxRecords
          /\ Sq!Len(log) <= MaxLogLength
          /\ \A i \in 1..Sq!Len(log) : log[i].seq \in Nat /\ log[i].payload \in Payloads
          /\ checkpoint.size \in 0..Sq!Len(written)
          /\ closed \in BOOLEAN
          /\ tampers \in 0..MaxTampers
          /\ verdict \in {"none", "accepted", "rejected"}

\* An accepted log holds exactly what was written up to the latest
\* checkpoint, and, once the run is closed, nothing else.
ChainIntact ==
    verdict = "accepted" =>
        /\ Prefix(log, checkpoint.size) = Prefix(written, checkpoint.size)
        /\ closed => log = written

\* Verification rejects every tampered log of a closed run.
TamperedLogRejected == closed /\ verdict # "none" /\ log # written => verdict = "rejected"

\* ... and never an untouched one.
NoFalseAlarm == verdict = "rejected" => log # written

\* Every run is eventually closed and judged.
EventuallyJudged == <>[](closed /\ verdict # "none")

=============================================================================
