-- The intent an ACME order in processing waits for, set when the order moves to processing
-- with it. Should the node stop before the certificate is stored, the intents job resolves the
-- intent as abandoned and concludes the order in the same transaction, so its client learns
-- that no certificate will come instead of polling a processing order forever. An intent is
-- for one order at most.
ALTER TABLE acme_orders ADD COLUMN intent_serial TEXT;
CREATE UNIQUE INDEX acme_orders_intent ON acme_orders (intent_serial);
