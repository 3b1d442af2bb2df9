-- The request (X-Request-Id) that caused an audit row, so the row and the request's log lines
-- can be read together. NULL for rows written outside a request (jobs, the command line) and
-- for rows older than this column; the hash chain covers it whenever it is set.
ALTER TABLE audit_log ADD COLUMN request_id TEXT;
