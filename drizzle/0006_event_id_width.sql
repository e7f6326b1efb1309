ALTER TABLE `audit_log` MODIFY COLUMN `correlation_id` varchar(128);--> statement-breakpoint
ALTER TABLE `idempotency_log` MODIFY COLUMN `event_id` varchar(128) NOT NULL;--> statement-breakpoint
ALTER TABLE `order_status_history` MODIFY COLUMN `event_id` varchar(128);