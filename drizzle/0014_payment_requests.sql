CREATE TABLE `payment_requests` (
	`order_id` varchar(36) NOT NULL,
	`status` varchar(12) NOT NULL,
	`provider_payment_id` varchar(64),
	`url` varchar(2048),
	`amount_cents` bigint NOT NULL,
	`currency` char(3) NOT NULL,
	`expires_at` datetime(3) NOT NULL,
	`attempts` int NOT NULL DEFAULT 0,
	`last_error` text,
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `payment_requests_order_id` PRIMARY KEY(`order_id`)
);
--> statement-breakpoint
ALTER TABLE `sales` ADD `user_request_limit` int;--> statement-breakpoint
ALTER TABLE `sales` ADD `user_request_window_seconds` int;--> statement-breakpoint
CREATE INDEX `payment_requests_status_ix` ON `payment_requests` (`status`,`updated_at`);--> statement-breakpoint
CREATE INDEX `payment_requests_provider_ix` ON `payment_requests` (`provider_payment_id`);--> statement-breakpoint
ALTER TABLE `sales` ADD CONSTRAINT `sales_user_request_rate_ck` CHECK ((`sales`.`user_request_limit` is null and `sales`.`user_request_window_seconds` is null) or (`sales`.`user_request_limit` > 0 and `sales`.`user_request_window_seconds` > 0));