-- Clearway's own tables (the job queue's tables belong to apalis and are
-- created by its migrations). Decimals are NUMERIC; times are microseconds
-- since the Unix epoch, as in the SQLite schema.

-- One row per workflow: the accepted command with the events it produced.
-- On the database transports this row is written in the same transaction
-- as the first step's job, so it is the durable journal the engine
-- recovers from. Only state columns change after insert.
create table workflows (
    id            bigint primary key,   -- the first event sequence number of the command
    kind          text    not null,      -- order, cancel, replace, deposit, withdrawal
    order_id      bigint,
    account_id    bigint not null,
    market        text,
    input         text    not null,      -- json: command, ts, events
    state         text    not null,      -- pending, running, retrying, completed, dead
    step          text    not null,      -- current (or last) step
    attempts      bigint not null default 0,
    last_error    text,
    created_at    bigint not null,
    updated_at    bigint not null,
    lease_until   bigint
);
create index workflows_state on workflows (state, updated_at);
create index workflows_order on workflows (order_id);

-- Append-only: one row per attempt of a step. Never updated in place.
create table workflow_attempts (
    id            bigserial primary key,
    workflow_id   bigint not null references workflows (id),
    step          text    not null,
    attempt       bigint not null,
    worker        text    not null,
    started_at    bigint not null,
    finished_at   bigint not null,
    outcome       text    not null,      -- done, duplicate, retry, dead
    error         text
);
create index workflow_attempts_wf on workflow_attempts (workflow_id, id);

create table orders (
    order_id         bigint primary key,
    account_id       bigint not null,
    market           text    not null,
    client_order_id  text,
    side             text    not null,
    order_type       text    not null,
    price            numeric,
    quantity         numeric    not null,
    time_in_force    text    not null,
    post_only        boolean not null,
    status           text    not null,   -- open, filled, cancelled, expired, self_trade_prevented
    filled           numeric    not null,
    open_quantity    numeric    not null,
    accepted_seq     bigint not null,
    last_seq         bigint not null,
    created_at       bigint not null,
    updated_at       bigint not null
);
create unique index orders_client_id on orders (account_id, client_order_id) where client_order_id is not null;
create index orders_account on orders (account_id, order_id);

create table trades (
    trade_id         bigint primary key,
    seq              bigint not null,
    market           text    not null,
    price            numeric    not null,
    quantity         numeric    not null,
    quote_amount     numeric    not null,
    taker_side       text    not null,
    maker_order_id   bigint not null,
    taker_order_id   bigint not null,
    maker_account    bigint not null,
    taker_account    bigint not null,
    maker_fee        numeric    not null,
    taker_fee        numeric    not null,
    created_at       bigint not null
);
create index trades_market on trades (market, trade_id);
create index trades_taker on trades (taker_order_id);
create index trades_maker on trades (maker_order_id);

-- Double-entry ledger: every posting's legs sum to zero per asset.
-- Account 0 is the outside world (deposits and withdrawals).
create table ledger_entries (
    posting       text    not null,      -- trade:<id>, deposit:<seq>, withdrawal:<seq>
    leg           bigint not null,
    workflow_id   bigint not null,
    account_id    bigint not null,
    asset         text    not null,
    amount        numeric    not null,      -- signed
    kind          text    not null,      -- trade, fee, deposit, withdrawal
    created_at    bigint not null,
    primary key (posting, leg)
);
create index ledger_account on ledger_entries (account_id, asset);

create table balances (
    account_id    bigint not null,
    asset         text    not null,
    total         numeric    not null,
    primary key (account_id, asset)
);

-- The archive step's receipts: object key and checksum of each record.
create table archive_objects (
    workflow_id   bigint primary key,
    object_key    text    not null,
    sha256        text    not null,
    created_at    bigint not null
);
