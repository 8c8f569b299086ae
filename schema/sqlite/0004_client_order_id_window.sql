-- A client order id is unique per account within a window (24 hours of the
-- engine's clock; see workers::client_ids::CLIENT_ID_WINDOW_US), after which
-- the intake forgets it and the account may use it again. So the orders
-- table can hold two orders of an account with one client order id (from
-- different windows): its index on them is no longer unique. Reads by
-- client order id take the newest.
drop index orders_client_id;
create index orders_client_id on orders (account_id, client_order_id, order_id) where client_order_id is not null;
