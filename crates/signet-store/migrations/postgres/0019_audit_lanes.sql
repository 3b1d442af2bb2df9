-- The audit log becomes a set of lanes, one hash chain per writer (each opened store), so
-- writers on different nodes never wait on a common chain head. `seq` stays the row's place
-- in the whole log; `lane_seq` is its place in its lane. Rows written before lanes form the
-- lane 'legacy' and keep their hashes.
ALTER TABLE audit_log ADD COLUMN lane TEXT NOT NULL DEFAULT 'legacy';
ALTER TABLE audit_log ADD COLUMN lane_seq BIGINT NOT NULL DEFAULT 0;
UPDATE audit_log SET lane_seq = seq;
CREATE UNIQUE INDEX audit_log_lane ON audit_log (lane, lane_seq);

-- Each lane's head: its last row's place and hash. Only the lane's own writer updates it.
CREATE TABLE audit_lanes (
    lane      TEXT PRIMARY KEY,
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL,
    opened_at BIGINT NOT NULL
);
INSERT INTO audit_lanes (lane, seq, hash, opened_at) SELECT 'legacy', seq, hash, 0 FROM audit_head WHERE seq > 0;
DROP TABLE audit_head;

-- Places in the whole log come from a sequence: taking a number locks no row.
CREATE SEQUENCE audit_log_seq;
SELECT setval('audit_log_seq', COALESCE((SELECT MAX(seq) FROM audit_log), 0) + 1, false);
