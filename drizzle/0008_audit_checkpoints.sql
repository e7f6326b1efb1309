CREATE TABLE `audit_checkpoints` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`seq` bigint NOT NULL,
	`hash` char(64) NOT NULL,
	`at` datetime(3) NOT NULL,
	`key_id` char(16) NOT NULL,
	`mac` char(64) NOT NULL,
	CONSTRAINT `audit_checkpoints_id` PRIMARY KEY(`id`)
);
