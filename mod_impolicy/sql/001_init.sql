-- mod_impolicy/sql/001_init.sql -- compliance archive, schema version 1.
--
-- Contract
--   Purpose: the PostgreSQL 15 archive that records every stanza the module
--   judged, the review queue (flags) built from the verdicts, retention
--   classes, legal holds, the audited purge path and the audit trail.
--   docs/archive.md is the reader's guide; every table, column, index, role
--   and function is also documented here, next to its definition.
--
--   Applied by `impolicyctl db init` (and, until that exists, by
--   tests/archive/run.sh) as ONE transaction (psql -1 / BEGIN..COMMIT) by a
--   role with CREATEROLE that may create schemas in the target database
--   (normally a superuser).  A script that has been applied refuses to run
--   again: CREATE SCHEMA fails on the existing schema.
--
-- Invariants
--   * Stored stanzas never change: UPDATE and TRUNCATE are refused by
--     triggers for every role, the table owner included; DELETE only inside
--     impolicy.purge(), and only for rows past retention and not on hold.
--     (A superuser can disable triggers; the hash chain is what proves to an
--     auditor that nobody did.)
--   * Replays are idempotent: the writer sends the record exactly as spooled,
--     including its ts, so (node, seq, ts) collides and
--     INSERT ... ON CONFLICT DO NOTHING drops the duplicate.
--   * Every purge, hold change, disposition and reviewer read leaves a row in
--     impolicy.audit_log, which nobody can change.
--   * Roles hold least privilege: the module's DSN only needs impolicy_writer
--     (INSERT on stanza and flag, nothing else).  Elevated actions go through
--     SECURITY DEFINER functions with a fixed search_path; PUBLIC has nothing.
--
-- Threading: the writer may use several connections; per node the sequence
--   and hash chain are produced by one writer thread, so rows of one node
--   arrive in seq order (verify does not rely on it: it orders by seq).

-- Outside a transaction block every statement would commit on its own: a
-- failure would leave half a schema and SET LOCAL ROLE would not apply.
DO $tx$
BEGIN
	IF transaction_timestamp() = statement_timestamp() THEN
		RAISE EXCEPTION 'impolicy: apply 001_init.sql in one transaction (psql -1)';
	END IF;
END
$tx$;

-- ---------------------------------------------------------------------------
-- Roles (cluster-wide; created once, reused by every database of the cluster)
-- ---------------------------------------------------------------------------
-- impolicy_owner     NOLOGIN. Owns every object; SECURITY DEFINER functions
--                    run as this role.  Nobody should log in as it.
-- impolicy_writer    NOLOGIN group for the module's DSN: INSERT stanzas and
--                    flags, create partitions ahead, read its chain head.
-- impolicy_reviewer  NOLOGIN group for compliance reviewers: reads and
--                    dispositions only through audited functions.
-- impolicy_admin     NOLOGIN group for compliance administrators: holds,
--                    retention classes, purge, checkpoint signatures, verify,
--                    and read access to the audit tables.
-- Login roles are made members of these groups (GRANT impolicy_writer TO x).
DO $roles$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['impolicy_owner', 'impolicy_writer',
	                         'impolicy_reviewer', 'impolicy_admin'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', r);
		END IF;
	END LOOP;
END
$roles$;

CREATE SCHEMA impolicy AUTHORIZATION impolicy_owner;
REVOKE ALL ON SCHEMA impolicy FROM PUBLIC;
-- From here on every object is created by, and owned by, impolicy_owner.
SET LOCAL ROLE impolicy_owner;
SET LOCAL search_path = impolicy, pg_catalog;
-- Functions are executable by PUBLIC by default; not in this schema.
ALTER DEFAULT PRIVILEGES FOR ROLE impolicy_owner IN SCHEMA impolicy
	REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- schema_version: one row per applied upgrade script.
-- ---------------------------------------------------------------------------
CREATE TABLE impolicy.schema_version (
	version    integer PRIMARY KEY,            -- the script's number (NNN_)
	name       text NOT NULL,                  -- the script's file name
	applied_at timestamptz NOT NULL DEFAULT now(),
	applied_by text NOT NULL DEFAULT session_user
);
INSERT INTO impolicy.schema_version (version, name) VALUES (1, '001_init.sql');

-- ---------------------------------------------------------------------------
-- retention_class: how long records of a class are kept.
-- ---------------------------------------------------------------------------
CREATE TABLE impolicy.retention_class (
	name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,32}$'),
	keep        interval NOT NULL CHECK (keep > interval '0'),
	description text
);
INSERT INTO impolicy.retention_class (name, keep, description) VALUES
	('3y', interval '3 years', 'default business records'),
	('6y', interval '6 years', 'FINRA/SEC 17a-4 business communications'),
	('7y', interval '7 years', 'MiFID II / tax-relevant records'),
	('10y', interval '10 years', 'critical violations kept for litigation'),
	-- What the writer records when neither the verdict nor the module's
	-- configuration names a class (imp_archive_config_t.retention_default
	-- NULL): the longest regulatory default above, so a missing setting
	-- never shortens retention.
	('default', interval '7 years', 'records judged without a retention class');

-- ---------------------------------------------------------------------------
-- stanza: every stanza judged, partitioned by month of ts.
-- ---------------------------------------------------------------------------
-- Columns marked [H] enter the canonical record encoding that the hash chain
-- covers (docs/archive.md gives the byte-exact order).
CREATE TABLE impolicy.stanza (
	node            text NOT NULL                  -- [H] module instance id
	                CHECK (node <> '' AND octet_length(node) <= 255),
	seq             bigint NOT NULL CHECK (seq >= 1), -- [H] per-node sequence
	ts              timestamptz NOT NULL,          -- [H] judged at (µs), fixed
	                                               -- in the spool record
	direction       text NOT NULL CHECK (direction IN
	                ('outbound', 'inbound', 'internal', 'external')), -- [H]
	kind            text NOT NULL CHECK (kind <> ''), -- [H] message|presence|iq|…
	stanza_type     text,                          -- [H] the type attribute
	from_bare       text,                          -- [H] sender bare JID
	from_full       text,                          -- [H] sender full JID
	to_bare         text,                          -- [H] recipient bare JID
	to_full         text,                          -- [H] recipient full JID
	thread          text,                          -- [H] <thread/>
	conv_key        text,                          -- [H] conversation key
	body            text,                          -- [H] body text (searchable)
	raw_xml         bytea NOT NULL,                -- [H] stanza exactly as received
	verdict         text NOT NULL CHECK (verdict IN
	                ('allow', 'flag', 'redact', 'reject')), -- [H]
	rule_ids        text[] NOT NULL DEFAULT '{}'   -- [H] matched rules, in order
	                CHECK (array_ndims(rule_ids) IS NULL OR
	                       (array_ndims(rule_ids) = 1 AND
	                        array_position(rule_ids, NULL) IS NULL)),
	sections        text[] NOT NULL DEFAULT '{}'   -- [H] their sections ('' = none)
	                CHECK (array_ndims(sections) IS NULL OR
	                       (array_ndims(sections) = 1 AND
	                        array_position(sections, NULL) IS NULL)),
	policy_digest   bytea                          -- [H] SHA-256 of the policy
	                CHECK (octet_length(policy_digest) = 32),
	retention_class text NOT NULL                  -- [H]
	                REFERENCES impolicy.retention_class (name),
	hash_alg        text NOT NULL CHECK (hash_alg IN ('sha256', 'hmac-sha256')), -- [H]
	key_id          text                           -- [H] HMAC key name
	                CHECK ((hash_alg = 'hmac-sha256') = (key_id IS NOT NULL)),
	prev_hash       bytea NOT NULL CHECK (octet_length(prev_hash) = 32), -- [H]
	rec_hash        bytea NOT NULL CHECK (octet_length(rec_hash) = 32),
	stored_at       timestamptz NOT NULL DEFAULT now(), -- DB clock, not hashed
	-- The partition key must be part of a partitioned table's primary key.
	-- (node, seq) alone is the logical key; ts is fixed per record (it is in
	-- the spool and in the hash), so a replay collides on the full key.
	PRIMARY KEY (node, seq, ts)
) PARTITION BY RANGE (ts);

-- Rows whose month has no partition land here instead of failing (a record
-- must never be lost to a missing partition).  ensure_partitions() keeps
-- monthly partitions ahead of time so this normally stays empty.
CREATE TABLE impolicy.stanza_default PARTITION OF impolicy.stanza DEFAULT;

-- Indexes (each costs ingest time; each answers a review query):
-- * PK (node, seq, ts): required for idempotent replay; per node seq grows,
--   so inserts touch the right-most leaf -- cheap.
-- * stanza_from_ts / stanza_to_ts: "everything user X sent / received in a
--   period" -- the main reviewer and hold query.  B-tree on (jid, ts): one
--   leaf insert per row into a hot set of pages (active users); two indexes
--   instead of one on an expression because both sides are queried alone.
-- * stanza_conv_ts: "the conversation around this flagged stanza" and
--   conversation holds.  Same cost profile.
-- * stanza_ts_brin: time-range scans inside a month partition.  BRIN is a few
--   pages per partition and rows arrive in ts order: near-zero ingest cost.
-- * stanza_body_fts: full-text search over bodies ('simple' configuration:
--   no stemming, language-neutral, exact words as compliance search wants).
--   The most expensive index (GIN, one entry per distinct word); fastupdate
--   batches entries in a pending list so the writer's inserts stay cheap and
--   the cost is paid by autovacuum.  Drop it from old partitions or move
--   search to an external engine if ingest benchmarks demand.
CREATE INDEX stanza_from_ts ON impolicy.stanza (from_bare, ts);
CREATE INDEX stanza_to_ts ON impolicy.stanza (to_bare, ts);
CREATE INDEX stanza_conv_ts ON impolicy.stanza (conv_key, ts);
CREATE INDEX stanza_ts_brin ON impolicy.stanza USING brin (ts);
CREATE INDEX stanza_body_fts ON impolicy.stanza
	USING gin (to_tsvector('simple'::regconfig, coalesce(body, '')))
	WITH (fastupdate = on);

-- ---------------------------------------------------------------------------
-- flag: the review queue, written together with the stanza.
-- ---------------------------------------------------------------------------
-- Not partitioned: flags are a small fraction of stanzas and the queue is
-- queried across months.  No foreign key to stanza (a per-row lookup into a
-- partitioned table would slow ingest; the writer inserts both in one
-- transaction and purge removes both together).
CREATE TABLE impolicy.flag (
	node        text NOT NULL,                 -- the stanza's node
	seq         bigint NOT NULL,               -- the stanza's seq
	ts          timestamptz NOT NULL,          -- the stanza's ts (partition
	                                           -- pruning on joins)
	ord         smallint NOT NULL CHECK (ord >= 0), -- position among its flags
	rule_id     text NOT NULL,                 -- the matched rule
	section     text,                          -- its policy section
	severity    text NOT NULL DEFAULT 'medium'
	            CHECK (severity IN ('low', 'medium', 'high', 'critical')),
	state       text NOT NULL DEFAULT 'open'   -- latest disposition
	            CHECK (state IN ('open', 'in-review', 'escalated',
	                             'dismissed', 'confirmed')),
	disposed_at timestamptz,                   -- when state last changed
	disposed_by text,                          -- who changed it
	created_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (node, seq, ord)               -- replays collide here
);
-- * flag_state_ts: the review queue ("open flags, oldest first").  Flags are
--   rare relative to stanzas; negligible ingest cost.
CREATE INDEX flag_state_ts ON impolicy.flag (state, ts);

-- disposition: every decision a reviewer recorded (flag.state is the latest).
CREATE TABLE impolicy.disposition (
	disposition_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	node     text NOT NULL,
	seq      bigint NOT NULL,
	ord      smallint NOT NULL,
	state    text NOT NULL,      -- the new state
	note     text,               -- the reviewer's reasoning
	actor    text NOT NULL DEFAULT session_user,
	at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX disposition_flag ON impolicy.disposition (node, seq, ord);

-- ---------------------------------------------------------------------------
-- legal_hold: records matching an active hold are never purged.
-- ---------------------------------------------------------------------------
-- A hold matches a record when every criterion it sets matches: jid (bare JID,
-- sender or recipient), conv_key, and the half-open range [from_ts, to_ts).
-- At least one criterion is required.  Holds are released, never deleted.
CREATE TABLE impolicy.legal_hold (
	hold_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	jid            text,            -- bare JID (either side of the stanza)
	conv_key       text,            -- conversation key
	from_ts        timestamptz,     -- range start (inclusive)
	to_ts          timestamptz,     -- range end (exclusive)
	reason         text NOT NULL CHECK (reason <> ''), -- matter / case number
	placed_by      text NOT NULL DEFAULT session_user,
	placed_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
	released_at    timestamptz,
	released_by    text,
	release_reason text,
	CHECK (jid IS NOT NULL OR conv_key IS NOT NULL OR
	       from_ts IS NOT NULL OR to_ts IS NOT NULL),
	CHECK (from_ts IS NULL OR to_ts IS NULL OR from_ts < to_ts),
	CHECK ((released_at IS NULL) = (released_by IS NULL))
);
-- Holds are few; purge scans them per candidate row.  Partial index on the
-- active ones keeps that cheap.
CREATE INDEX legal_hold_active ON impolicy.legal_hold (hold_id)
	WHERE released_at IS NULL;

-- ---------------------------------------------------------------------------
-- Purge bookkeeping and checkpoints.
-- ---------------------------------------------------------------------------
-- purge_run: one row per call of impolicy.purge().
CREATE TABLE impolicy.purge_run (
	purge_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	actor       text NOT NULL DEFAULT session_user,
	as_of       timestamptz NOT NULL,          -- retention measured at this time
	txid        bigint NOT NULL,               -- the purging transaction
	started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
	finished_at timestamptz,
	removed     bigint                         -- rows of stanza removed
);

-- purged_record: what each purge removed -- enough to bridge the hash chain
-- over the gap (the record's own hash) and nothing of its content.
CREATE TABLE impolicy.purged_record (
	purge_id        bigint NOT NULL REFERENCES impolicy.purge_run,
	node            text NOT NULL,
	seq             bigint NOT NULL,
	ts              timestamptz NOT NULL,
	retention_class text NOT NULL,
	prev_hash       bytea NOT NULL,
	rec_hash        bytea NOT NULL,
	PRIMARY KEY (node, seq)
);

-- chain_checkpoint: per purge and node, a digest over the removed records'
-- (seq, rec_hash) list, signed afterwards by impolicyctl with a key the
-- database does not hold (HMAC-SHA-256), so `verify` can trust the bridge.
CREATE TABLE impolicy.chain_checkpoint (
	checkpoint_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	purge_id      bigint NOT NULL REFERENCES impolicy.purge_run,
	node          text NOT NULL,
	first_seq     bigint NOT NULL,             -- lowest removed seq
	last_seq      bigint NOT NULL,             -- highest removed seq
	removed       bigint NOT NULL,             -- how many were removed
	digest        bytea NOT NULL,              -- see docs/archive.md
	created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
	signature     bytea,                       -- HMAC-SHA-256(key, digest)
	sig_key_id    text,
	signed_at     timestamptz,
	signed_by     text
);

-- ---------------------------------------------------------------------------
-- audit_log: every purge, hold change, disposition and reviewer read.
-- ---------------------------------------------------------------------------
CREATE TABLE impolicy.audit_log (
	audit_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at       timestamptz NOT NULL DEFAULT clock_timestamp(),
	actor    text NOT NULL DEFAULT session_user, -- the login role
	action   text NOT NULL,   -- e.g. purge, hold.add, review.read
	object   jsonb,           -- what the action touched (ids, parameters)
	detail   text
);
CREATE INDEX audit_log_action_at ON impolicy.audit_log (action, at);

-- ---------------------------------------------------------------------------
-- Guards: the triggers that make the archive append-only.
-- ---------------------------------------------------------------------------
-- The audited functions mark their transaction with a transaction-local
-- setting impolicy.guard = '<purpose>:<id>:<txid>'.  The triggers accept a
-- change only when the mark names the current transaction AND (for purge) an
-- unfinished purge_run row of that transaction exists -- so even a forged mark
-- leaves an audit row, and the per-row retention and hold checks still apply.

-- Is a stanza row past retention at as_of and not on any active hold?
CREATE FUNCTION impolicy.purgeable(p_from_bare text, p_to_bare text,
                                   p_conv_key text, p_ts timestamptz,
                                   p_class text, p_as_of timestamptz)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
	SELECT EXISTS (SELECT 1 FROM impolicy.retention_class r
	               WHERE r.name = p_class AND p_ts + r.keep < p_as_of)
	   AND NOT EXISTS (
		SELECT 1 FROM impolicy.legal_hold h
		WHERE h.released_at IS NULL
		  AND (h.jid IS NULL OR h.jid = p_from_bare OR h.jid = p_to_bare)
		  AND (h.conv_key IS NULL OR h.conv_key = p_conv_key)
		  AND (h.from_ts IS NULL OR p_ts >= h.from_ts)
		  AND (h.to_ts IS NULL OR p_ts < h.to_ts))
$$;

-- The purge_run this transaction is allowed to delete under, or NULL.
CREATE FUNCTION impolicy.guard_purge_id() RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
DECLARE
	g text := current_setting('impolicy.guard', true);
	parts text[];
	id bigint;
BEGIN
	IF g IS NULL OR g NOT LIKE 'purge:%' THEN
		RETURN NULL;
	END IF;
	parts := string_to_array(g, ':');
	IF array_length(parts, 1) <> 3 OR parts[3] <> txid_current()::text
	   OR parts[2] !~ '^[0-9]{1,18}$' THEN
		RETURN NULL;
	END IF;
	SELECT p.purge_id INTO id FROM impolicy.purge_run p
	WHERE p.purge_id = parts[2]::bigint AND p.txid = txid_current()
	  AND p.finished_at IS NULL;
	RETURN id;
END
$$;

CREATE FUNCTION impolicy.guard_is(p_purpose text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
	SELECT coalesce(current_setting('impolicy.guard', true), '')
	       = p_purpose || ':0:' || txid_current()::text
$$;

-- stanza: UPDATE never; DELETE only through purge, row by row re-checked and
-- recorded in purged_record.
CREATE FUNCTION impolicy.stanza_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
DECLARE
	pid bigint;
	v_as_of timestamptz;
BEGIN
	IF TG_OP = 'UPDATE' THEN
		RAISE EXCEPTION 'impolicy: archived stanzas cannot be changed'
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = format('node %s seq %s', OLD.node, OLD.seq),
			      HINT = 'The archive is append-only.';
	END IF;
	pid := impolicy.guard_purge_id();
	IF pid IS NULL THEN
		RAISE EXCEPTION 'impolicy: archived stanzas can only be removed by impolicy.purge()'
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = format('node %s seq %s', OLD.node, OLD.seq);
	END IF;
	SELECT p.as_of INTO v_as_of FROM impolicy.purge_run p WHERE p.purge_id = pid;
	IF NOT impolicy.purgeable(OLD.from_bare, OLD.to_bare, OLD.conv_key,
	                          OLD.ts, OLD.retention_class, v_as_of) THEN
		RAISE EXCEPTION 'impolicy: node % seq % is within retention or on hold',
			OLD.node, OLD.seq USING ERRCODE = 'insufficient_privilege';
	END IF;
	INSERT INTO impolicy.purged_record
		(purge_id, node, seq, ts, retention_class, prev_hash, rec_hash)
	VALUES (pid, OLD.node, OLD.seq, OLD.ts, OLD.retention_class,
	        OLD.prev_hash, OLD.rec_hash);
	RETURN OLD;
END
$$;

-- flag: DELETE only with its stanza under purge; UPDATE only of the
-- disposition columns, only inside record_disposition().
CREATE FUNCTION impolicy.flag_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
DECLARE
	pid bigint;
	ok boolean;
BEGIN
	IF TG_OP = 'UPDATE' THEN
		IF impolicy.guard_is('review')
		   AND (NEW.node, NEW.seq, NEW.ts, NEW.ord, NEW.rule_id, NEW.section,
		        NEW.severity, NEW.created_at)
		       IS NOT DISTINCT FROM
		       (OLD.node, OLD.seq, OLD.ts, OLD.ord, OLD.rule_id, OLD.section,
		        OLD.severity, OLD.created_at) THEN
			RETURN NEW;
		END IF;
		RAISE EXCEPTION 'impolicy: flags change only through impolicy.record_disposition()'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	pid := impolicy.guard_purge_id();
	IF pid IS NOT NULL THEN
		SELECT impolicy.purgeable(s.from_bare, s.to_bare, s.conv_key, s.ts,
		                          s.retention_class, p.as_of)
		INTO ok
		FROM impolicy.stanza s, impolicy.purge_run p
		WHERE s.node = OLD.node AND s.seq = OLD.seq AND s.ts = OLD.ts
		  AND p.purge_id = pid;
		-- A flag whose stanza is already gone may go too.
		IF ok IS NULL OR ok THEN
			RETURN OLD;
		END IF;
	END IF;
	RAISE EXCEPTION 'impolicy: flags can only be removed with their stanza by impolicy.purge()'
		USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Tables that are append-only for everyone (audit trail, purge records).
CREATE FUNCTION impolicy.append_only_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION 'impolicy: % on %.% is not allowed (append-only)',
		TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
		USING ERRCODE = 'insufficient_privilege';
END
$$;

-- purge_run may only be finished by the purge that started it.
CREATE FUNCTION impolicy.purge_run_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
BEGIN
	IF TG_OP = 'UPDATE' AND OLD.finished_at IS NULL
	   AND impolicy.guard_purge_id() = OLD.purge_id
	   AND (NEW.purge_id, NEW.actor, NEW.as_of, NEW.txid, NEW.started_at)
	       IS NOT DISTINCT FROM
	       (OLD.purge_id, OLD.actor, OLD.as_of, OLD.txid, OLD.started_at) THEN
		RETURN NEW;
	END IF;
	RAISE EXCEPTION 'impolicy: % on impolicy.purge_run is only possible through its audited function', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;

-- legal_hold rows are only released, by hold_release(); never edited or
-- deleted.
CREATE FUNCTION impolicy.legal_hold_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
BEGIN
	IF TG_OP = 'UPDATE' AND OLD.released_at IS NULL
	   AND impolicy.guard_is('hold')
	   AND (NEW.hold_id, NEW.jid, NEW.conv_key, NEW.from_ts, NEW.to_ts,
	        NEW.reason, NEW.placed_by, NEW.placed_at)
	       IS NOT DISTINCT FROM
	       (OLD.hold_id, OLD.jid, OLD.conv_key, OLD.from_ts, OLD.to_ts,
	        OLD.reason, OLD.placed_by, OLD.placed_at) THEN
		RETURN NEW;
	END IF;
	RAISE EXCEPTION 'impolicy: % on impolicy.legal_hold is only possible through its audited function', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;

-- chain_checkpoint rows are signed once, by checkpoint_sign(); never edited
-- or deleted.
CREATE FUNCTION impolicy.checkpoint_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
BEGIN
	IF TG_OP = 'UPDATE' AND OLD.signature IS NULL
	   AND impolicy.guard_is('sign')
	   AND (NEW.checkpoint_id, NEW.purge_id, NEW.node, NEW.first_seq,
	        NEW.last_seq, NEW.removed, NEW.digest, NEW.created_at)
	       IS NOT DISTINCT FROM
	       (OLD.checkpoint_id, OLD.purge_id, OLD.node, OLD.first_seq,
	        OLD.last_seq, OLD.removed, OLD.digest, OLD.created_at) THEN
		RETURN NEW;
	END IF;
	RAISE EXCEPTION 'impolicy: % on impolicy.chain_checkpoint is only possible through its audited function', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER stanza_guard BEFORE UPDATE OR DELETE ON impolicy.stanza
	FOR EACH ROW EXECUTE FUNCTION impolicy.stanza_guard();
CREATE TRIGGER flag_guard BEFORE UPDATE OR DELETE ON impolicy.flag
	FOR EACH ROW EXECUTE FUNCTION impolicy.flag_guard();
CREATE TRIGGER flag_no_truncate BEFORE TRUNCATE ON impolicy.flag
	FOR EACH STATEMENT EXECUTE FUNCTION impolicy.append_only_guard();
-- TRUNCATE triggers are per table: the parent's fires for TRUNCATE of the
-- parent; ensure_partitions() adds one to each partition it creates.
CREATE TRIGGER stanza_no_truncate BEFORE TRUNCATE ON impolicy.stanza
	FOR EACH STATEMENT EXECUTE FUNCTION impolicy.append_only_guard();
CREATE TRIGGER stanza_no_truncate BEFORE TRUNCATE ON impolicy.stanza_default
	FOR EACH STATEMENT EXECUTE FUNCTION impolicy.append_only_guard();
DO $t$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['audit_log', 'disposition', 'purged_record',
	                         'schema_version'] LOOP
		EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON impolicy.%I '
		               'FOR EACH ROW EXECUTE FUNCTION impolicy.append_only_guard()',
		               t || '_append_only', t);
		EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON impolicy.%I '
		               'FOR EACH STATEMENT EXECUTE FUNCTION impolicy.append_only_guard()',
		               t || '_no_truncate', t);
	END LOOP;
	FOREACH t IN ARRAY ARRAY['purge_run', 'legal_hold', 'chain_checkpoint'] LOOP
		EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON impolicy.%I '
		               'FOR EACH ROW EXECUTE FUNCTION impolicy.%I()',
		               t || '_guard', t,
		               CASE t WHEN 'chain_checkpoint' THEN 'checkpoint_guard'
		                      ELSE t || '_guard' END);
		EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON impolicy.%I '
		               'FOR EACH STATEMENT EXECUTE FUNCTION impolicy.append_only_guard()',
		               t || '_no_truncate', t);
	END LOOP;
END
$t$;

CREATE FUNCTION impolicy.audit(p_action text, p_object jsonb, p_detail text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
	INSERT INTO impolicy.audit_log (action, object, detail)
	VALUES (p_action, p_object, p_detail)
$$;

-- ---------------------------------------------------------------------------
-- Partitions
-- ---------------------------------------------------------------------------
-- ensure_partitions(from, to): creates the monthly partitions
-- stanza_yYYYYmMM covering [from, to] that do not exist yet (at most 1200
-- months per call) and returns how many it created.  Called by init (this
-- script), by the writer at start-up and when a month rolls over, and by
-- purge.  A month whose rows already sit in the default partition is skipped
-- with a warning (attaching it would require moving stored rows).
CREATE FUNCTION impolicy.ensure_partitions(
	p_from timestamptz DEFAULT now() - interval '1 month',
	p_to timestamptz DEFAULT now() + interval '3 months')
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
DECLARE
	m timestamptz;
	lo timestamptz;
	hi timestamptz;
	part text;
	made integer := 0;
BEGIN
	IF p_from IS NULL OR p_to IS NULL OR p_from > p_to THEN
		RAISE EXCEPTION 'impolicy: ensure_partitions: bad range % .. %', p_from, p_to;
	END IF;
	-- Month boundaries in UTC, independent of the session's TimeZone.
	lo := date_trunc('month', p_from AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
	hi := date_trunc('month', p_to AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
	IF hi > lo + interval '1200 months' THEN
		RAISE EXCEPTION 'impolicy: ensure_partitions: more than 1200 months';
	END IF;
	-- Serialise concurrent callers (several writer connections at month end).
	PERFORM pg_advisory_xact_lock(hashtext('impolicy.ensure_partitions'));
	m := lo;
	WHILE m <= hi LOOP
		part := 'stanza_y' || to_char(m AT TIME ZONE 'UTC', 'YYYY"m"MM');
		IF to_regclass('impolicy.' || quote_ident(part)) IS NULL THEN
			IF EXISTS (SELECT 1 FROM impolicy.stanza_default d
			           WHERE d.ts >= m AND d.ts < m + interval '1 month') THEN
				RAISE WARNING 'impolicy: % not created: rows of that month are in stanza_default', part;
			ELSE
				EXECUTE format('CREATE TABLE impolicy.%I PARTITION OF impolicy.stanza '
				               'FOR VALUES FROM (%L) TO (%L)',
				               part, m, m + interval '1 month');
				EXECUTE format('CREATE TRIGGER stanza_no_truncate BEFORE TRUNCATE ON impolicy.%I '
				               'FOR EACH STATEMENT EXECUTE FUNCTION impolicy.append_only_guard()',
				               part);
				made := made + 1;
			END IF;
		END IF;
		m := m + interval '1 month';
	END LOOP;
	RETURN made;
END
$$;

-- ---------------------------------------------------------------------------
-- Canonical record encoding and chain verification (reference implementation
-- of docs/archive.md "Canonical record encoding"; impolicyctl verify is the
-- production verifier and the only one that can check HMAC chains).
-- ---------------------------------------------------------------------------
-- A byte string item: 4-byte big-endian length, then the bytes;
-- NULL is the length 0xFFFFFFFF with no bytes.
CREATE FUNCTION impolicy.enc_bytes(b bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE WHEN b IS NULL THEN '\xffffffff'::bytea
	            ELSE int4send(octet_length(b)) || b END
$$;

CREATE FUNCTION impolicy.enc_text(t text) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT impolicy.enc_bytes(convert_to(t, 'UTF8'))
$$;

-- An array: 4-byte big-endian element count, then each element as a text item.
CREATE FUNCTION impolicy.enc_text_array(a text[]) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE WHEN a IS NULL THEN '\xffffffff'::bytea
	       ELSE int4send(coalesce(cardinality(a), 0)) ||
	            coalesce((SELECT string_agg(impolicy.enc_text(x), ''::bytea ORDER BY i)
	                      FROM unnest(a) WITH ORDINALITY AS u(x, i)), ''::bytea)
	       END
$$;

-- The canonical encoding of one stanza row (what rec_hash is computed over).
CREATE FUNCTION impolicy.canonical_record(s impolicy.stanza) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT 'IMPARC01'::bytea
	    || impolicy.enc_text(s.node)
	    || impolicy.enc_bytes(int8send(s.seq))
	    || impolicy.enc_bytes(int8send(
	           (extract(epoch FROM s.ts) * 1000000)::bigint))
	    || impolicy.enc_text(s.direction)
	    || impolicy.enc_text(s.kind)
	    || impolicy.enc_text(s.stanza_type)
	    || impolicy.enc_text(s.from_bare)
	    || impolicy.enc_text(s.from_full)
	    || impolicy.enc_text(s.to_bare)
	    || impolicy.enc_text(s.to_full)
	    || impolicy.enc_text(s.thread)
	    || impolicy.enc_text(s.conv_key)
	    || impolicy.enc_text(s.body)
	    || impolicy.enc_bytes(s.raw_xml)
	    || impolicy.enc_text(s.verdict)
	    || impolicy.enc_text_array(s.rule_ids)
	    || impolicy.enc_text_array(s.sections)
	    || impolicy.enc_bytes(s.policy_digest)
	    || impolicy.enc_text(s.retention_class)
	    || impolicy.enc_text(s.hash_alg)
	    || impolicy.enc_text(s.key_id)
	    || impolicy.enc_bytes(s.prev_hash)
$$;

-- verify_chain(node): walks the node's records in seq order and reports every
-- problem: 'altered' (SHA-256 of the encoding differs from rec_hash),
-- 'broken-link' (prev_hash is not the previous record's rec_hash),
-- 'missing' (a seq gap not accounted for by purged_record),
-- 'reordered' (ts goes backwards), 'unverifiable-hmac' (keyed records: only
-- impolicyctl verify holds the key; their links are still checked).
-- Purged records bridge the chain with their recorded rec_hash.
CREATE FUNCTION impolicy.verify_chain(p_node text)
RETURNS TABLE (seq bigint, problem text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
DECLARE
	r record;
	prev_hash bytea := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
	prev_seq bigint := 0;
	prev_ts timestamptz := '-infinity';
BEGIN
	PERFORM impolicy.audit('verify', jsonb_build_object('node', p_node), NULL);
	FOR r IN
		SELECT s.seq, s.ts, s.prev_hash, s.rec_hash, s.hash_alg, false AS purged,
		       sha256(impolicy.canonical_record(s)) AS computed
		FROM impolicy.stanza s WHERE s.node = p_node
		UNION ALL
		SELECT p.seq, p.ts, p.prev_hash, p.rec_hash, NULL, true, NULL
		FROM impolicy.purged_record p WHERE p.node = p_node
		-- Equal seqs: the stored record before its purge record, the
		-- earliest ts first; the later ones are the duplicates.
		ORDER BY 1, 6, 2
	LOOP
		IF r.seq = prev_seq THEN
			seq := r.seq; problem := 'duplicate'; RETURN NEXT;
			CONTINUE;
		END IF;
		IF r.seq <> prev_seq + 1 THEN
			seq := prev_seq + 1; problem := 'missing'; RETURN NEXT;
		ELSIF r.prev_hash <> prev_hash THEN
			seq := r.seq; problem := 'broken-link'; RETURN NEXT;
		END IF;
		IF r.ts < prev_ts THEN
			seq := r.seq; problem := 'reordered'; RETURN NEXT;
		END IF;
		IF NOT r.purged THEN
			IF r.hash_alg = 'sha256' THEN
				IF r.computed <> r.rec_hash THEN
					seq := r.seq; problem := 'altered'; RETURN NEXT;
				END IF;
			ELSE
				seq := r.seq; problem := 'unverifiable-hmac'; RETURN NEXT;
			END IF;
		END IF;
		prev_seq := r.seq;
		prev_hash := r.rec_hash;
		prev_ts := r.ts;
	END LOOP;
END
$$;

-- ---------------------------------------------------------------------------
-- Writer functions
-- ---------------------------------------------------------------------------
-- writer_chain_head(node): the node's last stored (seq, ts, rec_hash), from
-- records or purge records, so a writer that lost its local state can go on
-- chaining without SELECT rights on the archive.  No row: start at seq 1 with
-- prev_hash = 32 zero bytes.
CREATE FUNCTION impolicy.writer_chain_head(p_node text)
RETURNS TABLE (seq bigint, ts timestamptz, rec_hash bytea)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
	SELECT x.seq, x.ts, x.rec_hash FROM (
		(SELECT s.seq, s.ts, s.rec_hash FROM impolicy.stanza s
		 WHERE s.node = p_node ORDER BY s.seq DESC LIMIT 1)
		UNION ALL
		(SELECT p.seq, p.ts, p.rec_hash FROM impolicy.purged_record p
		 WHERE p.node = p_node ORDER BY p.seq DESC LIMIT 1)) x
	ORDER BY x.seq DESC LIMIT 1
$$;

-- ---------------------------------------------------------------------------
-- Reviewer functions (every call is audited)
-- ---------------------------------------------------------------------------
CREATE TYPE impolicy.review_row AS (
	node text, seq bigint, ts timestamptz, direction text, kind text,
	stanza_type text, from_full text, to_full text, thread text,
	conv_key text, body text, verdict text, rule_ids text[],
	sections text[], retention_class text);

-- review_queue(state, limit): flags in a state, oldest first, with the
-- stanza summary (body included: the reviewer must see what was flagged).
CREATE FUNCTION impolicy.review_queue(p_state text DEFAULT 'open',
                                      p_limit integer DEFAULT 100)
RETURNS TABLE (node text, seq bigint, ord smallint, ts timestamptz,
               rule_id text, section text, severity text, state text,
               from_full text, to_full text, conv_key text, body text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
BEGIN
	PERFORM impolicy.audit('review.queue',
		jsonb_build_object('state', p_state, 'limit', p_limit), NULL);
	RETURN QUERY
	SELECT f.node, f.seq, f.ord, f.ts, f.rule_id, f.section, f.severity,
	       f.state, s.from_full, s.to_full, s.conv_key, s.body
	FROM impolicy.flag f
	JOIN impolicy.stanza s ON s.node = f.node AND s.seq = f.seq AND s.ts = f.ts
	WHERE f.state = p_state
	ORDER BY f.ts, f.node, f.seq, f.ord
	LIMIT least(greatest(coalesce(p_limit, 100), 0), 10000);
END
$$;

-- review_stanza(node, seq): one record in full, raw XML included.
CREATE FUNCTION impolicy.review_stanza(p_node text, p_seq bigint)
RETURNS TABLE (node text, seq bigint, ts timestamptz, direction text,
               kind text, stanza_type text, from_full text, to_full text,
               thread text, conv_key text, body text, raw_xml bytea,
               verdict text, rule_ids text[], sections text[],
               policy_digest bytea, retention_class text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
BEGIN
	PERFORM impolicy.audit('review.read',
		jsonb_build_object('node', p_node, 'seq', p_seq), NULL);
	RETURN QUERY
	SELECT s.node, s.seq, s.ts, s.direction, s.kind, s.stanza_type,
	       s.from_full, s.to_full, s.thread, s.conv_key, s.body, s.raw_xml,
	       s.verdict, s.rule_ids, s.sections, s.policy_digest,
	       s.retention_class
	FROM impolicy.stanza s WHERE s.node = p_node AND s.seq = p_seq;
END
$$;

-- review_conversation(conv_key, from, to): a conversation in time order.
CREATE FUNCTION impolicy.review_conversation(p_conv_key text,
                                             p_from timestamptz,
                                             p_to timestamptz,
                                             p_limit integer DEFAULT 1000)
RETURNS SETOF impolicy.review_row
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
BEGIN
	PERFORM impolicy.audit('review.conversation',
		jsonb_build_object('conv_key', p_conv_key, 'from', p_from,
		                   'to', p_to, 'limit', p_limit), NULL);
	RETURN QUERY
	SELECT s.node, s.seq, s.ts, s.direction, s.kind, s.stanza_type,
	       s.from_full, s.to_full, s.thread, s.conv_key, s.body, s.verdict,
	       s.rule_ids, s.sections, s.retention_class
	FROM impolicy.stanza s
	WHERE s.conv_key = p_conv_key AND s.ts >= p_from AND s.ts < p_to
	ORDER BY s.ts, s.node, s.seq
	LIMIT least(greatest(coalesce(p_limit, 1000), 0), 100000);
END
$$;

-- review_user(jid, from, to): what a bare JID sent or received.
CREATE FUNCTION impolicy.review_user(p_jid text, p_from timestamptz,
                                     p_to timestamptz,
                                     p_limit integer DEFAULT 1000)
RETURNS SETOF impolicy.review_row
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
BEGIN
	PERFORM impolicy.audit('review.user',
		jsonb_build_object('jid', p_jid, 'from', p_from, 'to', p_to,
		                   'limit', p_limit), NULL);
	RETURN QUERY
	SELECT s.node, s.seq, s.ts, s.direction, s.kind, s.stanza_type,
	       s.from_full, s.to_full, s.thread, s.conv_key, s.body, s.verdict,
	       s.rule_ids, s.sections, s.retention_class
	FROM impolicy.stanza s
	WHERE (s.from_bare = p_jid OR s.to_bare = p_jid)
	  AND s.ts >= p_from AND s.ts < p_to
	ORDER BY s.ts, s.node, s.seq
	LIMIT least(greatest(coalesce(p_limit, 1000), 0), 100000);
END
$$;

-- record_disposition(node, seq, ord, state, note): the only way a flag
-- changes.  Appends to disposition and audit_log.  Returns the
-- disposition id; raises if the flag does not exist.
CREATE FUNCTION impolicy.record_disposition(p_node text, p_seq bigint,
                                            p_ord smallint, p_state text,
                                            p_note text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
DECLARE
	did bigint;
	n bigint;
BEGIN
	IF p_state IS NULL OR p_state = 'open' THEN
		RAISE EXCEPTION 'impolicy: a disposition needs a state other than open';
	END IF;
	PERFORM set_config('impolicy.guard', 'review:0:' || txid_current()::text, true);
	UPDATE impolicy.flag f
	SET state = p_state, disposed_at = clock_timestamp(),
	    disposed_by = session_user
	WHERE f.node = p_node AND f.seq = p_seq AND f.ord = p_ord;
	GET DIAGNOSTICS n = ROW_COUNT;
	PERFORM set_config('impolicy.guard', '', true);
	IF n = 0 THEN
		RAISE EXCEPTION 'impolicy: no flag node % seq % ord %', p_node, p_seq, p_ord;
	END IF;
	INSERT INTO impolicy.disposition (node, seq, ord, state, note)
	VALUES (p_node, p_seq, p_ord, p_state, p_note)
	RETURNING disposition_id INTO did;
	PERFORM impolicy.audit('review.disposition',
		jsonb_build_object('node', p_node, 'seq', p_seq, 'ord', p_ord,
		                   'state', p_state, 'disposition_id', did),
		p_note);
	RETURN did;
END
$$;

-- ---------------------------------------------------------------------------
-- Admin functions (every call is audited)
-- ---------------------------------------------------------------------------
-- hold_add(jid, conv_key, from, to, reason): places a legal hold; returns
-- its id.  NULL criteria match anything; at least one must be set.
CREATE FUNCTION impolicy.hold_add(p_jid text, p_conv_key text,
                                  p_from timestamptz, p_to timestamptz,
                                  p_reason text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
DECLARE
	hid bigint;
BEGIN
	INSERT INTO impolicy.legal_hold (jid, conv_key, from_ts, to_ts, reason)
	VALUES (p_jid, p_conv_key, p_from, p_to, p_reason)
	RETURNING hold_id INTO hid;
	PERFORM impolicy.audit('hold.add',
		jsonb_build_object('hold_id', hid, 'jid', p_jid,
		                   'conv_key', p_conv_key, 'from', p_from,
		                   'to', p_to), p_reason);
	RETURN hid;
END
$$;

-- hold_release(hold_id, reason): ends an active hold (the row stays).
CREATE FUNCTION impolicy.hold_release(p_hold_id bigint, p_reason text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	IF p_reason IS NULL OR p_reason = '' THEN
		RAISE EXCEPTION 'impolicy: releasing a hold needs a reason';
	END IF;
	PERFORM set_config('impolicy.guard', 'hold:0:' || txid_current()::text, true);
	UPDATE impolicy.legal_hold h
	SET released_at = clock_timestamp(), released_by = session_user,
	    release_reason = p_reason
	WHERE h.hold_id = p_hold_id AND h.released_at IS NULL;
	GET DIAGNOSTICS n = ROW_COUNT;
	PERFORM set_config('impolicy.guard', '', true);
	IF n = 0 THEN
		RAISE EXCEPTION 'impolicy: no active hold %', p_hold_id;
	END IF;
	PERFORM impolicy.audit('hold.release',
		jsonb_build_object('hold_id', p_hold_id), p_reason);
END
$$;

-- retention_class_set(name, keep, description): adds or changes a class.
CREATE FUNCTION impolicy.retention_class_set(p_name text, p_keep interval,
                                             p_description text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
BEGIN
	INSERT INTO impolicy.retention_class (name, keep, description)
	VALUES (p_name, p_keep, p_description)
	ON CONFLICT (name) DO UPDATE
	SET keep = EXCLUDED.keep, description = EXCLUDED.description;
	PERFORM impolicy.audit('retention.set',
		jsonb_build_object('name', p_name, 'keep', p_keep::text), p_description);
END
$$;

-- purge(limit): removes records past their retention class and not on any
-- active hold (with their flags), at most p_limit stanzas (NULL: all),
-- records each in purged_record, writes one chain_checkpoint per node and an
-- audit row.  Returns the purge_id.  Retention is measured at now(): no
-- caller can purge "as of" a future date.
CREATE FUNCTION impolicy.purge(p_limit integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
DECLARE
	pid bigint;
	n bigint;
BEGIN
	IF p_limit IS NOT NULL AND p_limit < 0 THEN
		RAISE EXCEPTION 'impolicy: purge limit must be >= 0';
	END IF;
	INSERT INTO impolicy.purge_run (as_of, txid)
	VALUES (now(), txid_current()) RETURNING purge_id INTO pid;
	PERFORM set_config('impolicy.guard',
		'purge:' || pid::text || ':' || txid_current()::text, true);

	-- Flags first, then their stanzas; both DELETEs run under the purge mark
	-- and their triggers re-check every row and record it.
	WITH v AS (
		SELECT s.node, s.seq, s.ts FROM impolicy.stanza s
		-- The first condition lets the executor skip partitions younger
		-- than the shortest retention class.
		WHERE s.ts < now() - (SELECT min(r.keep) FROM impolicy.retention_class r)
		  AND impolicy.purgeable(s.from_bare, s.to_bare, s.conv_key, s.ts,
		                         s.retention_class, now())
		ORDER BY s.node, s.seq
		LIMIT p_limit),
	df AS (
		DELETE FROM impolicy.flag f USING v
		WHERE f.node = v.node AND f.seq = v.seq AND f.ts = v.ts
		RETURNING 1),
	ds AS (
		DELETE FROM impolicy.stanza s USING v
		WHERE s.node = v.node AND s.seq = v.seq AND s.ts = v.ts
		RETURNING 1)
	-- (Referencing both CTEs runs both DELETEs.)
	SELECT count(*) INTO n FROM ds, (SELECT count(*) FROM df) x;
	-- What the triggers recorded is the authoritative count.
	SELECT count(*) INTO n FROM impolicy.purged_record p WHERE p.purge_id = pid;

	-- Checkpoint digest: SHA-256 over, per removed record in seq order,
	-- 8-byte big-endian seq || 32-byte rec_hash (docs/archive.md).
	INSERT INTO impolicy.chain_checkpoint
		(purge_id, node, first_seq, last_seq, removed, digest)
	SELECT pid, p.node, min(p.seq), max(p.seq), count(*),
	       sha256(string_agg(int8send(p.seq) || p.rec_hash, ''::bytea
	                         ORDER BY p.seq))
	FROM impolicy.purged_record p WHERE p.purge_id = pid
	GROUP BY p.node;

	UPDATE impolicy.purge_run r SET finished_at = clock_timestamp(), removed = n
	WHERE r.purge_id = pid;
	PERFORM set_config('impolicy.guard', '', true);
	PERFORM impolicy.audit('purge',
		jsonb_build_object('purge_id', pid, 'removed', n, 'limit', p_limit),
		NULL);
	-- Keep partitions ahead while we are here.
	PERFORM impolicy.ensure_partitions();
	RETURN pid;
END
$$;

-- checkpoint_sign(checkpoint_id, signature, key_id): stores the HMAC that
-- impolicyctl computed over the checkpoint's digest.  Once only.
CREATE FUNCTION impolicy.checkpoint_sign(p_checkpoint_id bigint,
                                         p_signature bytea, p_key_id text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, impolicy, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	IF p_signature IS NULL OR octet_length(p_signature) <> 32 THEN
		RAISE EXCEPTION 'impolicy: a checkpoint signature is 32 bytes';
	END IF;
	PERFORM set_config('impolicy.guard', 'sign:0:' || txid_current()::text, true);
	UPDATE impolicy.chain_checkpoint c
	SET signature = p_signature, sig_key_id = p_key_id,
	    signed_at = clock_timestamp(), signed_by = session_user
	WHERE c.checkpoint_id = p_checkpoint_id AND c.signature IS NULL;
	GET DIAGNOSTICS n = ROW_COUNT;
	PERFORM set_config('impolicy.guard', '', true);
	IF n = 0 THEN
		RAISE EXCEPTION 'impolicy: checkpoint % does not exist or is already signed',
			p_checkpoint_id;
	END IF;
	PERFORM impolicy.audit('checkpoint.sign',
		jsonb_build_object('checkpoint_id', p_checkpoint_id,
		                   'key_id', p_key_id), NULL);
END
$$;

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA impolicy FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA impolicy FROM PUBLIC;
GRANT USAGE ON SCHEMA impolicy TO impolicy_writer, impolicy_reviewer,
	impolicy_admin;

-- Writer: INSERT only, and only the columns it supplies (stored_at, flag
-- state and disposition columns keep their defaults).  No SELECT at all: the
-- writer replays with a bare "ON CONFLICT DO NOTHING" (the primary key is
-- the only unique constraint, so it is the one that fires); naming a
-- conflict target would need SELECT on those columns.
GRANT INSERT (node, seq, ts, direction, kind, stanza_type, from_bare,
              from_full, to_bare, to_full, thread, conv_key, body, raw_xml,
              verdict, rule_ids, sections, policy_digest, retention_class,
              hash_alg, key_id, prev_hash, rec_hash)
	ON impolicy.stanza TO impolicy_writer;
GRANT INSERT (node, seq, ts, ord, rule_id, section, severity)
	ON impolicy.flag TO impolicy_writer;
GRANT EXECUTE ON FUNCTION impolicy.ensure_partitions(timestamptz, timestamptz),
	impolicy.writer_chain_head(text) TO impolicy_writer;

-- Reviewer: functions only.
GRANT EXECUTE ON FUNCTION
	impolicy.review_queue(text, integer),
	impolicy.review_stanza(text, bigint),
	impolicy.review_conversation(text, timestamptz, timestamptz, integer),
	impolicy.review_user(text, timestamptz, timestamptz, integer),
	impolicy.record_disposition(text, bigint, smallint, text, text)
	TO impolicy_reviewer;

-- Admin: holds, retention, purge, checkpoints, verify; reads the
-- bookkeeping and audit tables (no stanza content).
GRANT EXECUTE ON FUNCTION
	impolicy.hold_add(text, text, timestamptz, timestamptz, text),
	impolicy.hold_release(bigint, text),
	impolicy.retention_class_set(text, interval, text),
	impolicy.purge(integer),
	impolicy.checkpoint_sign(bigint, bytea, text),
	impolicy.verify_chain(text),
	impolicy.ensure_partitions(timestamptz, timestamptz)
	TO impolicy_admin;
GRANT SELECT ON impolicy.audit_log, impolicy.legal_hold, impolicy.purge_run,
	impolicy.purged_record, impolicy.chain_checkpoint,
	impolicy.retention_class, impolicy.schema_version, impolicy.disposition
	TO impolicy_admin;
GRANT SELECT ON impolicy.retention_class, impolicy.schema_version
	TO impolicy_writer, impolicy_reviewer;

-- Partitions for the recent past and the coming months.
DO $p$ BEGIN PERFORM impolicy.ensure_partitions(); END $p$;
