-- opsbot's store as commit 2d96825 made it in PostgreSQL (generate.py), from pg_dump --inserts
-- with the schema's name, psql commands and SET lines taken out: it loads into the search_path.

CREATE FUNCTION opsbot_audit_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'audit log is append-only' USING ERRCODE = 'restrict_violation'; END $$;

CREATE TABLE opsbot_audit (
    id integer NOT NULL,
    operation_id character varying(32),
    at timestamp without time zone NOT NULL,
    kind character varying(64) NOT NULL,
    actor character varying(255),
    channel character varying(64),
    detail text NOT NULL,
    changes text,
    prev_hash character varying(64),
    hash character varying(64)
);

CREATE SEQUENCE opsbot_audit_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE opsbot_audit_id_seq OWNED BY opsbot_audit.id;

CREATE TABLE opsbot_channel_state (
    kind character varying(32) NOT NULL,
    key character varying(255) NOT NULL,
    value text NOT NULL,
    updated_at timestamp without time zone NOT NULL
);

CREATE TABLE opsbot_event_deliveries (
    id integer NOT NULL,
    event_id integer NOT NULL,
    conversation character varying(255) NOT NULL,
    channel character varying(32) NOT NULL,
    address text NOT NULL,
    buttons text NOT NULL,
    kind character varying(16) NOT NULL,
    state character varying(16) NOT NULL,
    held boolean NOT NULL,
    attempts integer NOT NULL,
    next_at timestamp without time zone NOT NULL,
    lease_owner character varying(64),
    lease_until timestamp without time zone,
    message_ref text,
    error text,
    created_at timestamp without time zone NOT NULL,
    sent_at timestamp without time zone
);

CREATE SEQUENCE opsbot_event_deliveries_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE opsbot_event_deliveries_id_seq OWNED BY opsbot_event_deliveries.id;

CREATE TABLE opsbot_event_keys (
    key character varying(255) NOT NULL,
    event_id integer NOT NULL
);

CREATE TABLE opsbot_event_messages (
    conversation character varying(255) NOT NULL,
    grp character varying(512) NOT NULL,
    message_ref text NOT NULL,
    kind character varying(16) NOT NULL,
    event text NOT NULL,
    first_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL
);

CREATE TABLE opsbot_events (
    id integer NOT NULL,
    source character varying(32) NOT NULL,
    key character varying(255) NOT NULL,
    grp character varying(512) NOT NULL,
    kind character varying(16) NOT NULL,
    body text NOT NULL,
    received_at timestamp without time zone NOT NULL
);

CREATE SEQUENCE opsbot_events_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE opsbot_events_id_seq OWNED BY opsbot_events.id;

CREATE TABLE opsbot_executions (
    operation_id character varying(32) NOT NULL,
    actor character varying(255) NOT NULL,
    claimed_at timestamp without time zone NOT NULL
);

CREATE TABLE opsbot_leases (
    name character varying(255) NOT NULL,
    owner character varying(255) NOT NULL,
    until timestamp without time zone NOT NULL,
    since timestamp without time zone NOT NULL
);

CREATE TABLE opsbot_operations (
    id character varying(32) NOT NULL,
    intent character varying(64) NOT NULL,
    risk character varying(16) NOT NULL,
    requester character varying(255) NOT NULL,
    sender_id character varying(255) NOT NULL,
    channel character varying(64) NOT NULL,
    text text NOT NULL,
    confidence double precision NOT NULL,
    parameters text NOT NULL,
    digest character varying(64) NOT NULL,
    state character varying(32) NOT NULL,
    created_at timestamp without time zone NOT NULL,
    expires_at timestamp without time zone NOT NULL,
    approval_roles text NOT NULL,
    confirmed_by character varying(255),
    confirmed_at timestamp without time zone,
    approved_by character varying(255),
    approved_at timestamp without time zone,
    backend_ref text NOT NULL,
    result text,
    result_detail text,
    finished_at timestamp without time zone,
    notified_at timestamp without time zone,
    reply_to text NOT NULL
);

CREATE TABLE opsbot_subscriptions (
    id character varying(32) NOT NULL,
    conversation character varying(255) NOT NULL,
    channel character varying(32) NOT NULL,
    address text NOT NULL,
    filters text NOT NULL,
    digest character varying(64) NOT NULL,
    buttons text NOT NULL,
    origin character varying(64) NOT NULL,
    created_by character varying(255) NOT NULL,
    created_at timestamp without time zone NOT NULL
);

CREATE TABLE opsbot_taught (
    id character varying(32) NOT NULL,
    text text NOT NULL,
    example text NOT NULL,
    intent character varying(64) NOT NULL,
    source character varying(16) NOT NULL,
    taught_by character varying(255) NOT NULL,
    channel character varying(64) NOT NULL,
    created_at timestamp without time zone NOT NULL,
    status character varying(16) NOT NULL,
    reviewed_by character varying(255),
    reviewed_at timestamp without time zone
);

ALTER TABLE ONLY opsbot_audit ALTER COLUMN id SET DEFAULT nextval('opsbot_audit_id_seq'::regclass);

ALTER TABLE ONLY opsbot_event_deliveries ALTER COLUMN id SET DEFAULT nextval('opsbot_event_deliveries_id_seq'::regclass);

ALTER TABLE ONLY opsbot_events ALTER COLUMN id SET DEFAULT nextval('opsbot_events_id_seq'::regclass);

INSERT INTO opsbot_audit VALUES (1, 'op-8a489f8b0b98', '2025-03-14 09:30:00', 'requested', 'alice', 'telegram', '{"intent": "deploy", "risk": "high", "text": "deploy payments 2.4.1 to prod", "confidence": 0.97, "parameters": {"service": "payments", "version": "2.4.1", "environment": "prod"}, "digest": "2ee088c08657231d", "sender_id": "telegram:42:7", "approval_roles": [], "expires_at": "2025-03-14T09:35:00+00:00"}', '{"id": "op-8a489f8b0b98", "intent": "deploy", "risk": "high", "requester": "alice", "sender_id": "telegram:42:7", "channel": "telegram", "text": "deploy payments 2.4.1 to prod", "confidence": 0.97, "parameters": {"service": "payments", "version": "2.4.1", "environment": "prod"}, "digest": "2ee088c08657231d", "state": "pending_confirmation", "created_at": "2025-03-14T09:30:00+00:00", "expires_at": "2025-03-14T09:35:00+00:00", "approval_roles": [], "confirmed_by": null, "confirmed_at": null, "approved_by": null, "approved_at": null, "backend_ref": {}, "result": null, "result_detail": null, "finished_at": null, "notified_at": null, "reply_to": {"chat_id": 42}}', '0000000000000000000000000000000000000000000000000000000000000000', '8367d9400e43d6fb250b873c6f723c1b2d06b75cb1abcd579d4ead1a67272343');
INSERT INTO opsbot_audit VALUES (2, 'op-8a489f8b0b98', '2025-03-14 09:30:20', 'executing', 'alice', NULL, '{"from": ["pending_confirmation"], "to": "executing", "confirmed_by": "alice", "confirmed_at": "2025-03-14T09:30:20+00:00"}', '{"state": "executing", "confirmed_by": "alice", "confirmed_at": "2025-03-14T09:30:20+00:00"}', '8367d9400e43d6fb250b873c6f723c1b2d06b75cb1abcd579d4ead1a67272343', '310bc23a6bc02948696706a0cd63443debe7bc4f4cbab1d78a298519f7501a1e');
INSERT INTO opsbot_audit VALUES (3, 'op-8a489f8b0b98', '2025-03-14 09:30:21', 'claimed', 'alice', NULL, '{}', NULL, '310bc23a6bc02948696706a0cd63443debe7bc4f4cbab1d78a298519f7501a1e', 'c1864724c4ae16c6c7e7ec17895600d456fbf0b94dce6e4ae369e50f9daa43c4');
INSERT INTO opsbot_audit VALUES (4, 'op-8a489f8b0b98', '2026-12-07 11:42:32.781341', 'backend', NULL, NULL, '{"job": "payments-deploy", "build": 118}', '{"backend_ref": {"job": "payments-deploy", "build": 118}}', 'c1864724c4ae16c6c7e7ec17895600d456fbf0b94dce6e4ae369e50f9daa43c4', '6e61a28d2516da1979c297ed0ed8e23556d5968d918f07ad478e3b4a88847797');
INSERT INTO opsbot_audit VALUES (5, 'op-8a489f8b0b98', '2025-03-14 09:33:00', 'succeeded', NULL, NULL, '{"from": ["executing"], "to": "succeeded", "result": "SUCCESS"}', '{"state": "succeeded", "result": "SUCCESS", "finished_at": "2025-03-14T09:33:00+00:00"}', '6e61a28d2516da1979c297ed0ed8e23556d5968d918f07ad478e3b4a88847797', '45654fc02e643d7ecaaa8432c1737173190a387f8c3b3122294ed4103fdb162b');
INSERT INTO opsbot_audit VALUES (6, 'op-8a489f8b0b98', '2025-03-14 09:33:05', 'notified', NULL, NULL, '{}', '{"notified_at": "2025-03-14T09:33:05+00:00"}', '45654fc02e643d7ecaaa8432c1737173190a387f8c3b3122294ed4103fdb162b', '6dd87b4560b092bd7c0138fd3b68d5d530c1e629bae209a971bcfb99195b36dc');
INSERT INTO opsbot_audit VALUES (7, 'op-505ffd22bc3d', '2025-03-14 09:35:00', 'requested', 'bob', 'teams', '{"intent": "rollback", "risk": "high", "text": "roll back search", "confidence": 0.91, "parameters": {"service": "search", "environment": "prod"}, "digest": "b037bd2743434169", "sender_id": "teams:conv-1", "approval_roles": ["sre"], "expires_at": "2025-03-14T10:35:00+00:00"}', '{"id": "op-505ffd22bc3d", "intent": "rollback", "risk": "high", "requester": "bob", "sender_id": "teams:conv-1", "channel": "teams", "text": "roll back search", "confidence": 0.91, "parameters": {"service": "search", "environment": "prod"}, "digest": "b037bd2743434169", "state": "pending_confirmation", "created_at": "2025-03-14T09:35:00+00:00", "expires_at": "2025-03-14T10:35:00+00:00", "approval_roles": ["sre"], "confirmed_by": null, "confirmed_at": null, "approved_by": null, "approved_at": null, "backend_ref": {}, "result": null, "result_detail": null, "finished_at": null, "notified_at": null, "reply_to": {}}', '6dd87b4560b092bd7c0138fd3b68d5d530c1e629bae209a971bcfb99195b36dc', '90e1146af20f32867573d21b6f0047387059280e4b44289c5659ebf2f51b5383');
INSERT INTO opsbot_audit VALUES (8, 'op-505ffd22bc3d', '2025-03-14 09:36:00', 'pending_approval', 'bob', NULL, '{"from": ["pending_confirmation"], "to": "pending_approval", "confirmed_by": "bob", "confirmed_at": "2025-03-14T09:36:00+00:00"}', '{"state": "pending_approval", "confirmed_by": "bob", "confirmed_at": "2025-03-14T09:36:00+00:00"}', '90e1146af20f32867573d21b6f0047387059280e4b44289c5659ebf2f51b5383', 'a4b26d00bcf93acb9ad40d464ff12190cd7166a1114935b833fb9396234ccbd1');
INSERT INTO opsbot_audit VALUES (9, 'op-b788ca4501f1', '2025-03-14 09:37:00', 'requested', 'carol', 'rest', '{"intent": "run_build", "risk": "low", "text": "run the nightly build", "confidence": 0.88, "parameters": {"job": "nightly"}, "digest": "4686bbb837372111", "sender_id": "rest:carol", "approval_roles": [], "expires_at": "2025-03-14T09:38:00+00:00"}', '{"id": "op-b788ca4501f1", "intent": "run_build", "risk": "low", "requester": "carol", "sender_id": "rest:carol", "channel": "rest", "text": "run the nightly build", "confidence": 0.88, "parameters": {"job": "nightly"}, "digest": "4686bbb837372111", "state": "pending_confirmation", "created_at": "2025-03-14T09:37:00+00:00", "expires_at": "2025-03-14T09:38:00+00:00", "approval_roles": [], "confirmed_by": null, "confirmed_at": null, "approved_by": null, "approved_at": null, "backend_ref": {}, "result": null, "result_detail": null, "finished_at": null, "notified_at": null, "reply_to": {}}', 'a4b26d00bcf93acb9ad40d464ff12190cd7166a1114935b833fb9396234ccbd1', '091a6ddf2c905198f3f80f283a6e2cae7e0cd0ddca96c4ab48df4d2b908b0fd9');
INSERT INTO opsbot_audit VALUES (10, 'op-b788ca4501f1', '2025-03-14 09:39:00', 'expired', NULL, NULL, '{"from": ["pending_approval", "pending_confirmation"], "to": "expired"}', '{"state": "expired", "finished_at": "2025-03-14T09:39:00+00:00"}', '091a6ddf2c905198f3f80f283a6e2cae7e0cd0ddca96c4ab48df4d2b908b0fd9', 'd072f01398f2b0e6607cd5cb60f38741b07e121e567781985c28801b9b059c22');
INSERT INTO opsbot_audit VALUES (11, NULL, '2025-03-14 09:40:00', 'forged_payload', 'telegram:99', 'telegram', '{"payload": "/affirm{\"operation_id\": \"op-x\"}", "reason": "unsigned"}', NULL, 'd072f01398f2b0e6607cd5cb60f38741b07e121e567781985c28801b9b059c22', '17adc50831bc3ab7fa0fa7f8608a7000442ce105f7a0b9d848b87154fb1047e6');

INSERT INTO opsbot_channel_state VALUES ('teams-ref', 'conv-1', '{"serviceUrl": "http://teams.example", "id": "conv-1"}', '2025-03-14 09:30:00');
INSERT INTO opsbot_channel_state VALUES ('telegram-button', 'b1', '{"payload": "/affirm"}', '2025-03-14 09:30:00');
INSERT INTO opsbot_channel_state VALUES ('telegram-seen', 'update:1001', '{}', '2025-03-14 09:30:00');

INSERT INTO opsbot_event_deliveries VALUES (1, 1, 'telegram:42', 'telegram', '{"chat_id": 42}', '[]', 'failure', 'sent', false, 0, '2025-03-14 09:44:00', NULL, NULL, '{"message_id": 501, "edited": false}', NULL, '2025-03-14 09:44:00', '2025-03-14 09:44:00');
INSERT INTO opsbot_event_deliveries VALUES (2, 2, 'telegram:42', 'telegram', '{"chat_id": 42}', '[]', 'recovery', 'pending', false, 0, '2025-03-14 09:50:00', NULL, NULL, NULL, NULL, '2025-03-14 09:50:00', NULL);

INSERT INTO opsbot_event_keys VALUES ('am:alias:1', 1);

INSERT INTO opsbot_event_messages VALUES ('telegram:42', 'am:HighErrors', '{"message_id": 501}', 'failure', '{"source": "alertmanager", "key": "am:HighErrors:payments:firing", "group": "am:HighErrors", "kind": "failure", "status": "firing", "title": "HighErrors on payments", "summary": "", "service": "payments", "environment": "prod", "job": null, "repo": null, "severity": "critical", "started_at": "2025-03-14T09:30:00+00:00", "ended_at": null, "links": [], "labels": {}, "count": 1}', '2025-03-14 09:44:00', '2025-03-14 09:44:00');

INSERT INTO opsbot_events VALUES (1, 'alertmanager', 'am:HighErrors:payments:firing', 'am:HighErrors', 'failure', '{"source": "alertmanager", "key": "am:HighErrors:payments:firing", "group": "am:HighErrors", "kind": "failure", "status": "firing", "title": "HighErrors on payments", "summary": "", "service": "payments", "environment": "prod", "job": null, "repo": null, "severity": "critical", "started_at": "2025-03-14T09:30:00+00:00", "ended_at": null, "links": [], "labels": {}, "count": 1}', '2025-03-14 09:44:00');
INSERT INTO opsbot_events VALUES (2, 'alertmanager', 'am:HighErrors:payments:resolved', 'am:HighErrors', 'recovery', '{"source": "alertmanager", "key": "am:HighErrors:payments:resolved", "group": "am:HighErrors", "kind": "recovery", "status": "resolved", "title": "HighErrors on payments", "summary": "", "service": "payments", "environment": "prod", "job": null, "repo": null, "severity": "critical", "started_at": "2025-03-14T09:30:00+00:00", "ended_at": "2025-03-14T09:50:00+00:00", "links": [], "labels": {}, "count": 1}', '2025-03-14 09:50:00');

INSERT INTO opsbot_executions VALUES ('op-8a489f8b0b98', 'alice', '2025-03-14 09:30:21');

INSERT INTO opsbot_leases VALUES ('telegram-poller:1234', 'host-a:11', '2025-03-14 09:30:20', '2025-03-14 09:30:00');
INSERT INTO opsbot_leases VALUES ('operation:op-8a489f8b0b98', 'host-b:22', '2025-03-14 09:30:20', '2025-03-14 09:30:00');

INSERT INTO opsbot_operations VALUES ('op-8a489f8b0b98', 'deploy', 'high', 'alice', 'telegram:42:7', 'telegram', 'deploy payments 2.4.1 to prod', 0.97, '{"service": "payments", "version": "2.4.1", "environment": "prod"}', '2ee088c08657231d', 'succeeded', '2025-03-14 09:30:00', '2025-03-14 09:35:00', '[]', 'alice', '2025-03-14 09:30:20', NULL, NULL, '{"job": "payments-deploy", "build": 118}', 'SUCCESS', NULL, '2025-03-14 09:33:00', '2025-03-14 09:33:05', '{"chat_id": 42}');
INSERT INTO opsbot_operations VALUES ('op-505ffd22bc3d', 'rollback', 'high', 'bob', 'teams:conv-1', 'teams', 'roll back search', 0.91, '{"service": "search", "environment": "prod"}', 'b037bd2743434169', 'pending_approval', '2025-03-14 09:35:00', '2025-03-14 10:35:00', '["sre"]', 'bob', '2025-03-14 09:36:00', NULL, NULL, '{}', NULL, NULL, NULL, NULL, '{}');
INSERT INTO opsbot_operations VALUES ('op-b788ca4501f1', 'run_build', 'low', 'carol', 'rest:carol', 'rest', 'run the nightly build', 0.88, '{"job": "nightly"}', '4686bbb837372111', 'expired', '2025-03-14 09:37:00', '2025-03-14 09:38:00', '[]', NULL, NULL, NULL, NULL, '{}', NULL, NULL, '2025-03-14 09:39:00', NULL, '{}');

INSERT INTO opsbot_subscriptions VALUES ('fd86521413e5170b', 'telegram:42', 'telegram', '{"chat_id": 42}', '{"sources": ["alertmanager", "grafana"], "service": null, "job": null, "environment": null, "severity": null, "kinds": ["failure", "recovery"]}', 'bd89631dfd7d55dff662ce7d1f7cd7bf51618ee9725b0831ff79f050b6242330', '[]', 'chat', 'alice', '2025-03-14 09:30:00');

INSERT INTO opsbot_taught VALUES ('t-b7c9656251', 'who is red', 'who is red', 'list_jobs', 'cli', 'bob', 'cli', '2025-03-14 09:42:00', 'candidate', NULL, NULL);
INSERT INTO opsbot_taught VALUES ('t-0ebbeb06f9', 'ship payments', 'ship [payments](service)', 'deploy', 'chat', 'alice', 'telegram', '2025-03-14 09:41:00', 'accepted', 'carol', '2025-03-14 09:43:00');

SELECT pg_catalog.setval('opsbot_audit_id_seq', 11, true);

SELECT pg_catalog.setval('opsbot_event_deliveries_id_seq', 2, true);

SELECT pg_catalog.setval('opsbot_events_id_seq', 2, true);

ALTER TABLE ONLY opsbot_audit
    ADD CONSTRAINT opsbot_audit_pkey PRIMARY KEY (id);

ALTER TABLE ONLY opsbot_channel_state
    ADD CONSTRAINT opsbot_channel_state_pkey PRIMARY KEY (kind, key);

ALTER TABLE ONLY opsbot_event_deliveries
    ADD CONSTRAINT opsbot_event_deliveries_pkey PRIMARY KEY (id);

ALTER TABLE ONLY opsbot_event_keys
    ADD CONSTRAINT opsbot_event_keys_pkey PRIMARY KEY (key);

ALTER TABLE ONLY opsbot_event_messages
    ADD CONSTRAINT opsbot_event_messages_pkey PRIMARY KEY (conversation, grp);

ALTER TABLE ONLY opsbot_events
    ADD CONSTRAINT opsbot_events_key_key UNIQUE (key);

ALTER TABLE ONLY opsbot_events
    ADD CONSTRAINT opsbot_events_pkey PRIMARY KEY (id);

ALTER TABLE ONLY opsbot_executions
    ADD CONSTRAINT opsbot_executions_pkey PRIMARY KEY (operation_id);

ALTER TABLE ONLY opsbot_leases
    ADD CONSTRAINT opsbot_leases_pkey PRIMARY KEY (name);

ALTER TABLE ONLY opsbot_operations
    ADD CONSTRAINT opsbot_operations_pkey PRIMARY KEY (id);

ALTER TABLE ONLY opsbot_subscriptions
    ADD CONSTRAINT opsbot_subscriptions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY opsbot_taught
    ADD CONSTRAINT opsbot_taught_pkey PRIMARY KEY (id);

ALTER TABLE ONLY opsbot_event_deliveries
    ADD CONSTRAINT ux_opsbot_event_deliveries_once UNIQUE (event_id, conversation);

ALTER TABLE ONLY opsbot_subscriptions
    ADD CONSTRAINT ux_opsbot_subscriptions_filters UNIQUE (conversation, digest);

CREATE INDEX ix_opsbot_audit_operation_id ON opsbot_audit USING btree (operation_id);

CREATE INDEX ix_opsbot_event_deliveries_conversation ON opsbot_event_deliveries USING btree (conversation, sent_at);

CREATE INDEX ix_opsbot_event_deliveries_due ON opsbot_event_deliveries USING btree (state, next_at);

CREATE INDEX ix_opsbot_events_grp ON opsbot_events USING btree (grp);

CREATE INDEX ix_opsbot_events_received ON opsbot_events USING btree (received_at);

CREATE INDEX ix_opsbot_operations_created_at ON opsbot_operations USING btree (created_at);

CREATE INDEX ix_opsbot_operations_sender_state ON opsbot_operations USING btree (sender_id, state);

CREATE INDEX ix_opsbot_operations_state ON opsbot_operations USING btree (state);

CREATE INDEX ix_opsbot_taught_status ON opsbot_taught USING btree (status);

CREATE UNIQUE INDEX ux_opsbot_audit_prev_hash ON opsbot_audit USING btree (prev_hash);

CREATE TRIGGER opsbot_audit_no_change BEFORE DELETE OR UPDATE ON opsbot_audit FOR EACH ROW EXECUTE FUNCTION opsbot_audit_append_only();

CREATE TRIGGER opsbot_audit_no_truncate BEFORE TRUNCATE ON opsbot_audit FOR EACH STATEMENT EXECUTE FUNCTION opsbot_audit_append_only();

