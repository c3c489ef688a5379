"""Run the sync state machine from a terminal: what ``aurora-sync sync``/``rerun`` (and the demo
and ``status``) use, one module per concern.

- ``execution_input``: the input an execution starts with (``--tables``/``--since``/``--full``)
  and its name.
- ``target``: which state machine. An explicit one (``--state-machine-arn``,
  ``AURORA_SYNC_STATE_MACHINE_ARN`` or the ``StateMachineArn`` output of ``--stack-name``) is
  started on AWS through boto3's standard environment; otherwise the local stack's engine deploys
  ``template.yaml`` into moto (idempotent) and the execution runs there. A rerun starts on the
  state machine of the execution it repeats.
- ``executions``: the Step Functions calls (start, describe, history pages, follow) and the two
  commands' flows.
- ``history``: an execution's events read into per-table results through the state contract's
  models: the Plan state's output (with the plan's items and failed tables, which ``executions``
  reads from the run's files it names), each Map iteration's last state (``ExportDone``/
  ``ExportFailed``/``ExportFailedCustomTarget``), the export rounds' settled tables and the
  verifier's report (``verify.json``, which the last ``Verify`` output names), whose summary
  names the rerun input; all in S3, read by ``executions``.
- ``progress``: the live lines a person follows while an execution runs.
- ``report``: the summary table, the schema-drift advice and the rerun hint.

Exit codes (the CLI's): 0 when the execution succeeded, including a run the planner skipped
because another execution was in flight (skipping is single-flight working as designed, and a
scheduler calling ``sync`` must not page anyone for it); 1 when a table failed or the execution
failed, timed out or was aborted; 2 for usage errors.
"""
