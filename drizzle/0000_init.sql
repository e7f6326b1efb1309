CREATE TABLE `audit_log` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`seq` bigint NOT NULL,
	`at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`actor` varchar(128) NOT NULL,
	`action` varchar(64) NOT NULL,
	`entity_type` varchar(32) NOT NULL,
	`entity_id` varchar(128) NOT NULL,
	`before` json,
	`after` json,
	`reason` text,
	`run_id` bigint,
	`correlation_id` varchar(64),
	`prev_hash` char(64) NOT NULL,
	`hash` char(64) NOT NULL,
	CONSTRAINT `audit_log_id` PRIMARY KEY(`id`),
	CONSTRAINT `audit_log_seq_uq` UNIQUE(`seq`)
);
--> statement-breakpoint
CREATE TABLE `idempotency_log` (
	`consumer` varchar(64) NOT NULL,
	`event_id` varchar(64) NOT NULL,
	`status` varchar(16) NOT NULL,
	`payload_hash` char(64) NOT NULL,
	`attempts` int NOT NULL DEFAULT 0,
	`order_id` varchar(36),
	`topic` varchar(200),
	`kafka_partition` int,
	`kafka_offset` bigint,
	`fence_token` bigint,
	`last_error` text,
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `idempotency_log_pk` PRIMARY KEY(`consumer`,`event_id`)
);
--> statement-breakpoint
CREATE TABLE `order_items` (
	`order_id` varchar(36) NOT NULL,
	`sku` varchar(64) NOT NULL,
	`quantity` int NOT NULL,
	`unit_price_cents` bigint NOT NULL,
	CONSTRAINT `order_items_pk` PRIMARY KEY(`order_id`,`sku`),
	CONSTRAINT `order_items_quantity_ck` CHECK(`order_items`.`quantity` > 0)
);
--> statement-breakpoint
CREATE TABLE `order_status_history` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`order_id` varchar(36) NOT NULL,
	`from_status` varchar(16),
	`to_status` varchar(16) NOT NULL,
	`actor` varchar(128) NOT NULL,
	`reason` varchar(255),
	`event_id` varchar(64),
	`fence_token` bigint,
	`at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `order_status_history_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE TABLE `orders` (
	`id` varchar(36) NOT NULL,
	`sale_id` varchar(64) NOT NULL,
	`user_id` varchar(64) NOT NULL,
	`status` varchar(16) NOT NULL,
	`status_reason` varchar(64),
	`total_cents` bigint NOT NULL,
	`currency` char(3) NOT NULL,
	`placed_at` datetime(3) NOT NULL,
	`pay_by` datetime(3) NOT NULL,
	`fence_token` bigint NOT NULL DEFAULT 0,
	`version` int NOT NULL DEFAULT 0,
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `orders_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE TABLE `outbox` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`event_id` varchar(64) NOT NULL,
	`topic` varchar(100) NOT NULL,
	`message_key` varchar(100) NOT NULL,
	`event_type` varchar(64) NOT NULL,
	`payload` json NOT NULL,
	`attempts` int NOT NULL DEFAULT 0,
	`last_error` text,
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`sent_at` datetime(3),
	CONSTRAINT `outbox_id` PRIMARY KEY(`id`),
	CONSTRAINT `outbox_event_uq` UNIQUE(`event_id`)
);
--> statement-breakpoint
CREATE TABLE `reconcile_findings` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`run_id` bigint unsigned NOT NULL,
	`kind` varchar(64) NOT NULL,
	`entity_type` varchar(32) NOT NULL,
	`entity_id` varchar(128) NOT NULL,
	`expected` json,
	`actual` json,
	`action` varchar(16) NOT NULL,
	`detail` text,
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `reconcile_findings_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE TABLE `reconcile_runs` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`job` varchar(64) NOT NULL,
	`mode` varchar(16) NOT NULL,
	`status` varchar(16) NOT NULL,
	`instance` varchar(128) NOT NULL,
	`started_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`heartbeat_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`finished_at` datetime(3),
	`counts` json,
	`error` text,
	CONSTRAINT `reconcile_runs_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE TABLE `sale_skus` (
	`sale_id` varchar(64) NOT NULL,
	`sku` varchar(64) NOT NULL,
	`total_stock` int NOT NULL,
	`held` int NOT NULL DEFAULT 0,
	`price_cents` bigint NOT NULL,
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `sale_skus_pk` PRIMARY KEY(`sale_id`,`sku`),
	CONSTRAINT `sale_skus_total_ck` CHECK(`sale_skus`.`total_stock` >= 0),
	CONSTRAINT `sale_skus_held_ck` CHECK(`sale_skus`.`held` >= 0 and `sale_skus`.`held` <= `sale_skus`.`total_stock`),
	CONSTRAINT `sale_skus_price_ck` CHECK(`sale_skus`.`price_cents` >= 0)
);
--> statement-breakpoint
CREATE TABLE `sales` (
	`id` varchar(64) NOT NULL,
	`currency` char(3) NOT NULL,
	`starts_at` datetime(3) NOT NULL,
	`ends_at` datetime(3) NOT NULL,
	`per_user_limit` int NOT NULL,
	`payment_window_seconds` int NOT NULL,
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `sales_id` PRIMARY KEY(`id`),
	CONSTRAINT `sales_window_ck` CHECK(`sales`.`ends_at` > `sales`.`starts_at`),
	CONSTRAINT `sales_per_user_limit_ck` CHECK(`sales`.`per_user_limit` > 0),
	CONSTRAINT `sales_payment_window_ck` CHECK(`sales`.`payment_window_seconds` > 0)
);
--> statement-breakpoint
ALTER TABLE `order_items` ADD CONSTRAINT `order_items_order_id_orders_id_fk` FOREIGN KEY (`order_id`) REFERENCES `orders`(`id`) ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `order_status_history` ADD CONSTRAINT `order_status_history_order_id_orders_id_fk` FOREIGN KEY (`order_id`) REFERENCES `orders`(`id`) ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `orders` ADD CONSTRAINT `orders_sale_id_sales_id_fk` FOREIGN KEY (`sale_id`) REFERENCES `sales`(`id`) ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `reconcile_findings` ADD CONSTRAINT `reconcile_findings_run_id_reconcile_runs_id_fk` FOREIGN KEY (`run_id`) REFERENCES `reconcile_runs`(`id`) ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `sale_skus` ADD CONSTRAINT `sale_skus_sale_id_sales_id_fk` FOREIGN KEY (`sale_id`) REFERENCES `sales`(`id`) ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `audit_log_entity_ix` ON `audit_log` (`entity_type`,`entity_id`);--> statement-breakpoint
CREATE INDEX `audit_log_run_ix` ON `audit_log` (`run_id`);--> statement-breakpoint
CREATE INDEX `audit_log_at_ix` ON `audit_log` (`at`);--> statement-breakpoint
CREATE INDEX `idempotency_log_order_ix` ON `idempotency_log` (`order_id`);--> statement-breakpoint
CREATE INDEX `idempotency_log_status_ix` ON `idempotency_log` (`status`,`updated_at`);--> statement-breakpoint
CREATE INDEX `order_status_history_order_ix` ON `order_status_history` (`order_id`,`id`);--> statement-breakpoint
CREATE INDEX `orders_sale_status_ix` ON `orders` (`sale_id`,`status`);--> statement-breakpoint
CREATE INDEX `orders_status_pay_by_ix` ON `orders` (`status`,`pay_by`);--> statement-breakpoint
CREATE INDEX `orders_user_ix` ON `orders` (`sale_id`,`user_id`);--> statement-breakpoint
CREATE INDEX `orders_updated_ix` ON `orders` (`updated_at`);--> statement-breakpoint
CREATE INDEX `outbox_unsent_ix` ON `outbox` (`sent_at`,`id`);--> statement-breakpoint
CREATE INDEX `reconcile_findings_run_ix` ON `reconcile_findings` (`run_id`);--> statement-breakpoint
CREATE INDEX `reconcile_findings_entity_ix` ON `reconcile_findings` (`entity_type`,`entity_id`);--> statement-breakpoint
CREATE INDEX `reconcile_runs_job_ix` ON `reconcile_runs` (`job`,`started_at`);--> statement-breakpoint
CREATE INDEX `reconcile_runs_status_ix` ON `reconcile_runs` (`status`);