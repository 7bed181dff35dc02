CREATE TABLE "access_requests" (
	"id" uuid PRIMARY KEY NOT NULL,
	"requester_id" text NOT NULL,
	"resource" text NOT NULL,
	"scope" text NOT NULL,
	"duration_seconds" integer NOT NULL,
	"reason" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"approvals_required" integer NOT NULL,
	"extends_grant_id" uuid,
	"created_at" timestamp with time zone NOT NULL,
	"timeout_at" timestamp with time zone NOT NULL,
	"decided_at" timestamp with time zone,
	"decided_by" text,
	"decision_note" text,
	"approval_channel" text,
	"approval_message_ts" text,
	CONSTRAINT "access_requests_status_check" CHECK ("access_requests"."status" in ('pending','approved','denied','expired','cancelled')),
	CONSTRAINT "access_requests_duration_check" CHECK ("access_requests"."duration_seconds" > 0),
	CONSTRAINT "access_requests_approvals_check" CHECK ("access_requests"."approvals_required" >= 1),
	CONSTRAINT "access_requests_reason_check" CHECK (char_length("access_requests"."reason") between 1 and 2000),
	CONSTRAINT "access_requests_decided_check" CHECK (("access_requests"."status" = 'pending') = ("access_requests"."decided_at" is null)),
	CONSTRAINT "access_requests_timeout_check" CHECK ("access_requests"."timeout_at" > "access_requests"."created_at")
);
--> statement-breakpoint
CREATE TABLE "approvals" (
	"request_id" uuid NOT NULL,
	"approver_id" text NOT NULL,
	"duration_seconds" integer,
	"created_at" timestamp with time zone NOT NULL,
	CONSTRAINT "approvals_request_id_approver_id_pk" PRIMARY KEY("request_id","approver_id"),
	CONSTRAINT "approvals_duration_check" CHECK ("approvals"."duration_seconds" is null or "approvals"."duration_seconds" > 0)
);
--> statement-breakpoint
CREATE TABLE "audit_events" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"kind" text NOT NULL,
	"actor" text NOT NULL,
	"resource" text,
	"request_id" uuid,
	"grant_id" uuid,
	"data" jsonb NOT NULL,
	"prev_hash" text NOT NULL,
	"hash" text NOT NULL,
	CONSTRAINT "audit_events_seq_check" CHECK ("audit_events"."seq" >= 1)
);
--> statement-breakpoint
CREATE TABLE "grants" (
	"id" uuid PRIMARY KEY NOT NULL,
	"request_id" uuid NOT NULL,
	"user_id" text NOT NULL,
	"resource" text NOT NULL,
	"scope" text NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"starts_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"extensions" integer DEFAULT 0 NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"ended_at" timestamp with time zone,
	"ended_by" text,
	"end_reason" text,
	"last_used_at" timestamp with time zone,
	CONSTRAINT "grants_status_check" CHECK ("grants"."status" in ('active','expired','revoked')),
	CONSTRAINT "grants_window_check" CHECK ("grants"."expires_at" > "grants"."starts_at"),
	CONSTRAINT "grants_ended_check" CHECK (("grants"."status" = 'active') = ("grants"."ended_at" is null)),
	CONSTRAINT "grants_extensions_check" CHECK ("grants"."extensions" >= 0)
);
--> statement-breakpoint
CREATE TABLE "outbox" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "outbox_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"dedupe_key" text NOT NULL,
	"kind" text NOT NULL,
	"payload" jsonb NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"next_attempt_at" timestamp with time zone NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"sent_at" timestamp with time zone,
	"last_error" text
);
--> statement-breakpoint
CREATE TABLE "signing_keys" (
	"kid" text PRIMARY KEY NOT NULL,
	"alg" text NOT NULL,
	"private_jwk" text NOT NULL,
	"public_jwk" jsonb NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"retired_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "approvals" ADD CONSTRAINT "approvals_request_id_access_requests_id_fk" FOREIGN KEY ("request_id") REFERENCES "access_requests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "grants" ADD CONSTRAINT "grants_request_id_access_requests_id_fk" FOREIGN KEY ("request_id") REFERENCES "access_requests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "access_requests_pending_idx" ON "access_requests" USING btree ("timeout_at") WHERE "access_requests"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "access_requests_requester_idx" ON "access_requests" USING btree ("requester_id","status");--> statement-breakpoint
CREATE UNIQUE INDEX "access_requests_one_pending_extension" ON "access_requests" USING btree ("extends_grant_id") WHERE "access_requests"."status" = 'pending' and "access_requests"."extends_grant_id" is not null;--> statement-breakpoint
CREATE INDEX "audit_events_grant_idx" ON "audit_events" USING btree ("grant_id","seq");--> statement-breakpoint
CREATE INDEX "audit_events_at_idx" ON "audit_events" USING btree ("at");--> statement-breakpoint
CREATE UNIQUE INDEX "grants_request_id_unique" ON "grants" USING btree ("request_id");--> statement-breakpoint
CREATE INDEX "grants_active_expiry_idx" ON "grants" USING btree ("expires_at") WHERE "grants"."status" = 'active';--> statement-breakpoint
CREATE INDEX "grants_user_idx" ON "grants" USING btree ("user_id","status");--> statement-breakpoint
CREATE UNIQUE INDEX "outbox_dedupe_key_unique" ON "outbox" USING btree ("dedupe_key");--> statement-breakpoint
CREATE INDEX "outbox_due_idx" ON "outbox" USING btree ("next_attempt_at") WHERE "outbox"."sent_at" is null;