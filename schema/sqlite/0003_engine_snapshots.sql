-- Engine snapshots: the matching engine's whole state (open orders,
-- balances, counters) and the intake's client order id index, as of the
-- sequence number `seq`, written by the intake every so many sequence
-- numbers. Recovery loads the newest one that leaves enough of the journal
-- to replay and replays only the workflows after it. Only the newest few
-- are kept.
create table engine_snapshots (
    seq      bigint primary key,  -- the engine's last sequence number when taken
    taken_at bigint not null,     -- µs since the epoch
    sha256   text not null,       -- of `state`, checked when it is loaded
    state    text not null        -- JSON
);
