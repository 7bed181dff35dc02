ALTER TABLE "approvals" ADD COLUMN "quota_requests" integer;--> statement-breakpoint
ALTER TABLE "grants" ADD COLUMN "quota_requests" integer;--> statement-breakpoint
ALTER TABLE "grants" ADD COLUMN "quota_response_bytes" bigint;--> statement-breakpoint
ALTER TABLE "grants" ADD COLUMN "used_requests" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "grants" ADD COLUMN "used_response_bytes" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "grants" ADD COLUMN "quota_exhausted_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "approvals" ADD CONSTRAINT "approvals_quota_check" CHECK ("approvals"."quota_requests" is null or "approvals"."quota_requests" > 0);--> statement-breakpoint
ALTER TABLE "grants" ADD CONSTRAINT "grants_quota_check" CHECK ("grants"."quota_requests" is null or "grants"."quota_requests" > 0);--> statement-breakpoint
ALTER TABLE "grants" ADD CONSTRAINT "grants_quota_bytes_check" CHECK ("grants"."quota_response_bytes" is null or "grants"."quota_response_bytes" > 0);--> statement-breakpoint
ALTER TABLE "grants" ADD CONSTRAINT "grants_used_check" CHECK ("grants"."used_requests" >= 0 and "grants"."used_response_bytes" >= 0);