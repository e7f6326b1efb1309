CREATE INDEX `outbox_key_ix` ON `outbox` (`message_key`);--> statement-breakpoint
CREATE INDEX `payments_outcome_ix` ON `payments` (`outcome`,`received_at`,`event_id`);