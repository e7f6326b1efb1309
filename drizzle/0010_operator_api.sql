CREATE TABLE `finding_reviews` (
	`finding_id` bigint unsigned NOT NULL,
	`status` varchar(16) NOT NULL,
	`actor` varchar(128) NOT NULL,
	`note` text,
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `finding_reviews_finding_id` PRIMARY KEY(`finding_id`)
);
--> statement-breakpoint
CREATE TABLE `operator_tokens` (
	`id` char(16) NOT NULL,
	`name` varchar(64) NOT NULL,
	`secret_hash` char(64) NOT NULL,
	`scopes` json NOT NULL,
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`created_by` varchar(128) NOT NULL,
	`last_used_at` datetime(3),
	`expires_at` datetime(3),
	`revoked_at` datetime(3),
	`revoked_by` varchar(128),
	CONSTRAINT `operator_tokens_id` PRIMARY KEY(`id`),
	CONSTRAINT `operator_tokens_name_uq` UNIQUE(`name`)
);
--> statement-breakpoint
ALTER TABLE `finding_reviews` ADD CONSTRAINT `finding_reviews_finding_id_reconcile_findings_id_fk` FOREIGN KEY (`finding_id`) REFERENCES `reconcile_findings`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `finding_reviews_status_ix` ON `finding_reviews` (`status`);