-- Clearway's own tables (the job queue's tables belong to apalis and are
-- created by its migrations). Decimals are TEXT here: SQLite has no exact
-- decimal type, and NUMERIC affinity would turn "0.10" into a float.
-- Times are microseconds since the Unix epoch.

-- One row per workflow: the accepted command with the events it produced.
-- On the database transports this row is written in the same transaction
-- as the first step's job, so it is the durable journal the engine
-- recovers from. Only state columns change after insert.
create table workflows (
    id            integer primary key,   -- the first event sequence number of the command
    kind          text    not null,      -- order, cancel, replace, deposit, withdrawal
    order_id      integer,
    account_id    integer not null,
    market        text,
    input         text    not null,      -- json: command, ts, events
    state         text    not null,      -- pending, running, retrying, completed, dead
    step          text    not null,      -- current (or last) step
    attempts      integer not null default 0,
    last_error    text,
    created_at    integer not null,
    updated_at    integer not null,
    lease_until   integer
);
create index workflows_state on workflows (state, updated_at);
create index workflows_order on workflows (order_id);

-- Append-only: one row per attempt of a step. Never updated in place.
create table workflow_attempts (
    id            integer primary key autoincrement,
    workflow_id   integer not null references workflows (id),
    step          text    not null,
    attempt       integer not null,
    worker        text    not null,
    started_at    integer not null,
    finished_at   integer not null,
    outcome       text    not null,      -- done, duplicate, retry, dead
    error         text
);
create index workflow_attempts_wf on workflow_attempts (workflow_id, id);

create table orders (
    order_id         integer primary key,
    account_id       integer not null,
    market           text    not null,
    client_order_id  text,
    side             text    not null,
    order_type       text    not null,
    price            text,
    quantity         text    not null,
    time_in_force    text    not null,
    post_only        integer not null,
    status           text    not null,   -- open, filled, cancelled, expired, self_trade_prevented
    filled           text    not null,
    open_quantity    text    not null,
    accepted_seq     integer not null,
    last_seq         integer not null,
    created_at       integer not null,
    updated_at       integer not null
);
create unique index orders_client_id on orders (account_id, client_order_id) where client_order_id is not null;
create index orders_account on orders (account_id, order_id);

create table trades (
    trade_id         integer primary key,
    seq              integer not null,
    market           text    not null,
    price            text    not null,
    quantity         text    not null,
    quote_amount     text    not null,
    taker_side       text    not null,
    maker_order_id   integer not null,
    taker_order_id   integer not null,
    maker_account    integer not null,
    taker_account    integer not null,
    maker_fee        text    not null,
    taker_fee        text    not null,
    created_at       integer not null
);
create index trades_market on trades (market, trade_id);
create index trades_taker on trades (taker_order_id);
create index trades_maker on trades (maker_order_id);

-- Double-entry ledger: every posting's legs sum to zero per asset.
-- Account 0 is the outside world (deposits and withdrawals).
create table ledger_entries (
    posting       text    not null,      -- trade:<id>, deposit:<seq>, withdrawal:<seq>
    leg           integer not null,
    workflow_id   integer not null,
    account_id    integer not null,
    asset         text    not null,
    amount        text    not null,      -- signed
    kind          text    not null,      -- trade, fee, deposit, withdrawal
    created_at    integer not null,
    primary key (posting, leg)
);
create index ledger_account on ledger_entries (account_id, asset);

create table balances (
    account_id    integer not null,
    asset         text    not null,
    total         text    not null,
    primary key (account_id, asset)
);

-- The archive step's receipts: object key and checksum of each record.
create table archive_objects (
    workflow_id   integer primary key,
    object_key    text    not null,
    sha256        text    not null,
    created_at    integer not null
);
