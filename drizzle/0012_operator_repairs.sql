CREATE TABLE `repairs` (
	`id` char(36) NOT NULL,
	`kind` varchar(32) NOT NULL,
	`target` varchar(255) NOT NULL,
	`params` json NOT NULL,
	`plan` json NOT NULL,
	`risky` boolean NOT NULL,
	`status` varchar(16) NOT NULL,
	`reason` text,
	`requested_by` varchar(128) NOT NULL,
	`approved_by` varchar(128),
	`applied_by` varchar(128),
	`result` json,
	`error` text,
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`approved_at` datetime(3),
	`applied_at` datetime(3),
	CONSTRAINT `repairs_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE INDEX `repairs_status_ix` ON `repairs` (`status`,`created_at`);