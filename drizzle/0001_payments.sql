CREATE TABLE `payments` (
	`event_id` varchar(64) NOT NULL,
	`order_id` varchar(36) NOT NULL,
	`status` varchar(16) NOT NULL,
	`amount_cents` bigint NOT NULL,
	`currency` char(3) NOT NULL,
	`outcome` varchar(24) NOT NULL,
	`detail` text,
	`received_at` datetime(3) NOT NULL,
	`recorded_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `payments_event_id` PRIMARY KEY(`event_id`)
);
--> statement-breakpoint
CREATE INDEX `payments_order_ix` ON `payments` (`order_id`);