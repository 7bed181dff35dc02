CREATE INDEX "audit_events_actor_at_idx" ON "audit_events" USING btree ("actor","at");--> statement-breakpoint
CREATE INDEX "audit_events_subject_at_idx" ON "audit_events" USING btree (("data"->>'userId'),"at");--> statement-breakpoint
CREATE INDEX "audit_events_request_idx" ON "audit_events" USING btree ("request_id") WHERE "audit_events"."request_id" is not null;--> statement-breakpoint
CREATE INDEX "audit_events_alert_at_idx" ON "audit_events" USING btree ("at") WHERE "audit_events"."kind" = 'anomaly.alert';--> statement-breakpoint
CREATE INDEX "audit_events_verified_idx" ON "audit_events" USING btree ("seq") WHERE "audit_events"."kind" = 'audit.verified';