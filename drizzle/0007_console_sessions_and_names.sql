CREATE TABLE "console_sessions" (
	"id" uuid PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"team_id" text NOT NULL,
	"signed_in_at" timestamp with time zone NOT NULL,
	"last_seen_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"ended_at" timestamp with time zone,
	"end_reason" text,
	CONSTRAINT "console_sessions_end_check" CHECK (("console_sessions"."ended_at" is null) = ("console_sessions"."end_reason" is null)),
	CONSTRAINT "console_sessions_end_reason_check" CHECK ("console_sessions"."end_reason" is null or "console_sessions"."end_reason" in ('signed_out')),
	CONSTRAINT "console_sessions_lifetime_check" CHECK ("console_sessions"."expires_at" > "console_sessions"."signed_in_at"),
	CONSTRAINT "console_sessions_seen_check" CHECK ("console_sessions"."last_seen_at" >= "console_sessions"."signed_in_at" and "console_sessions"."last_seen_at" <= "console_sessions"."expires_at")
);
--> statement-breakpoint
CREATE TABLE "person_names" (
	"user_id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"source" text NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "person_names_name_check" CHECK (char_length("person_names"."name") between 1 and 200),
	CONSTRAINT "person_names_source_check" CHECK ("person_names"."source" in ('sign_in','slack'))
);
--> statement-breakpoint
CREATE INDEX "console_sessions_user_idx" ON "console_sessions" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "console_sessions_expires_idx" ON "console_sessions" USING btree ("expires_at");