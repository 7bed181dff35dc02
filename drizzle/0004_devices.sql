CREATE TABLE "devices" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"thumbprint" text NOT NULL,
	"public_jwk" jsonb NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"user_id" text,
	"pairing_handle" text,
	"pairing_secret_hash" text,
	"pairing_expires_at" timestamp with time zone NOT NULL,
	"pairing_attempts" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"linked_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"revoked_by" text,
	"revoke_reason" text,
	CONSTRAINT "devices_status_check" CHECK ("devices"."status" in ('pending','linked','revoked')),
	CONSTRAINT "devices_name_check" CHECK (char_length("devices"."name") between 1 and 64),
	CONSTRAINT "devices_thumbprint_check" CHECK ("devices"."thumbprint" ~ '^[A-Za-z0-9_-]{43}$'),
	CONSTRAINT "devices_code_check" CHECK (("devices"."status" = 'pending') = ("devices"."pairing_handle" is not null and "devices"."pairing_secret_hash" is not null)),
	CONSTRAINT "devices_pending_owner_check" CHECK ("devices"."status" <> 'pending' or "devices"."user_id" is null),
	CONSTRAINT "devices_linked_check" CHECK ("devices"."status" <> 'linked' or ("devices"."user_id" is not null and "devices"."linked_at" is not null)),
	CONSTRAINT "devices_revoked_check" CHECK (("devices"."status" = 'revoked') = ("devices"."revoked_at" is not null)),
	CONSTRAINT "devices_attempts_check" CHECK ("devices"."pairing_attempts" between 0 and 5),
	CONSTRAINT "devices_pairing_window_check" CHECK ("devices"."pairing_expires_at" > "devices"."created_at")
);
--> statement-breakpoint
CREATE UNIQUE INDEX "devices_thumbprint_unique" ON "devices" USING btree ("thumbprint");--> statement-breakpoint
CREATE UNIQUE INDEX "devices_pending_handle_unique" ON "devices" USING btree ("pairing_handle") WHERE "devices"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "devices_user_idx" ON "devices" USING btree ("user_id","status");