CREATE TABLE `audit_head` (
	`id` tinyint NOT NULL,
	`seq` bigint NOT NULL,
	`hash` char(64) NOT NULL,
	CONSTRAINT `audit_head_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
INSERT INTO `audit_head` (`id`, `seq`, `hash`) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
