-- The ledger legs of a workflow: the archive step reads them for its records
-- and `ops verify` for each workflow it checks (without it, each read scans
-- the whole ledger).
create index ledger_workflow on ledger_entries (workflow_id);
