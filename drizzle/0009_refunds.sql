CREATE TABLE `refunds` (
	`id` varchar(36) NOT NULL,
	`order_id` varchar(36) NOT NULL,
	`payment_event_id` varchar(64) NOT NULL,
	`amount_cents` bigint NOT NULL,
	`currency` char(3) NOT NULL,
	`cause` varchar(24) NOT NULL,
	`reason` varchar(255) NOT NULL,
	`status` varchar(12) NOT NULL,
	`requested_by` varchar(255) NOT NULL,
	`provider_refund_id` varchar(64),
	`attempts` int NOT NULL DEFAULT 0,
	`last_error` text,
	`requested_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`completed_at` datetime(3),
	CONSTRAINT `refunds_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE INDEX `refunds_order_ix` ON `refunds` (`order_id`);--> statement-breakpoint
CREATE INDEX `refunds_payment_ix` ON `refunds` (`payment_event_id`);--> statement-breakpoint
CREATE INDEX `refunds_status_ix` ON `refunds` (`status`,`updated_at`);