-- Recovery on SQS FIFO: a barrier message is sent into every message group
-- of the persist queue; the persist step records it here. When every
-- barrier of a recovery is here, everything accepted before it is persisted.
create table recovery_barriers (
    id        text primary key,   -- '<token>:<group>'
    token     text not null,      -- one per recovery
    passed_at bigint not null     -- µs since the epoch
);
create index recovery_barriers_token on recovery_barriers (token);
